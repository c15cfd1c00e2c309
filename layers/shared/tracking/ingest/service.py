"""Ingest: admit, validate, normalize and store tracking calls of the three dialects, and record the
calls it refuses for the plugin they were meant for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tracking.compact import dumps_compact
from tracking.errors import ApiError, Forbidden, Unauthorized, ValidationFailed
from tracking.ingest.configs import PluginDirectory
from tracking.ingest.dialects import plugin, segment, widget
from tracking.ingest.ratelimit import RateLimiter
from tracking.ingest.rejections import RejectionLog
from tracking.models.canonical import CanonicalEvent, is_identifier
from tracking.models.config import PublishedConfig
from tracking.models.rejections import Rejection, cut_payload
from tracking.models.request import RequestInfo


class EventSink(Protocol):
    def put(self, event: CanonicalEvent) -> bool: ...
    def put_all(self, events: Sequence[CanonicalEvent]) -> int: ...
    def put_atomic(self, events: Sequence[CanonicalEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call came to: how many of its calls were valid (stored now or before), and which were
    refused (only a batch may hold both)."""

    accepted: int
    rejected: tuple[Rejection, ...] = ()


def refused(error: ApiError, payload: Any) -> Rejection:
    return Rejection(error.code, error.message, tuple(error.details), cut_payload(dumps_compact(payload)))


class IngestService:
    def __init__(
        self,
        directory: PluginDirectory,
        sink: EventSink,
        limiter: RateLimiter,
        rejections: RejectionLog,
        default_plugin_id: str,
    ) -> None:
        self._directory = directory
        self._sink = sink
        self._limiter = limiter
        self._rejections = rejections
        self._default_plugin_id = default_plugin_id

    def admit(self, client_ip: str | None) -> None:
        """The per-IP rate limit, checked before the body is even parsed; and the moment to write the
        rejection counts this container has had waiting."""
        self._rejections.flush_due()
        if client_ip:
            self._limiter.check(client_ip)

    @staticmethod
    def _check_origin(published: PublishedConfig | None, origin: str | None) -> None:
        if origin is not None and published is not None and not published.config.allows_origin(origin):
            raise Forbidden(f"Origin {origin[:200]!r} is not allowed for this plugin")

    def check_preflight(self, plugin_id: str, origin: str | None) -> None:
        """CORS preflight of a plugin route: answered only for origins the plugin allows."""
        published = self._directory.config(plugin_id) if is_identifier(plugin_id) else None
        self._check_origin(published, origin)

    def _stored(self, events: list[CanonicalEvent]) -> Outcome:
        """One call's event, stored once (a repeat of a stored one is not stored again)."""
        for event in events:
            self._sink.put(event)
        return Outcome(accepted=len(events))

    def widget(self, payload: dict[str, Any], info: RequestInfo) -> Outcome:
        claimed = widget.plugin_id_hint(payload, self._default_plugin_id)
        published = self._directory.config(claimed) if is_identifier(claimed) else None
        self._check_origin(published, info.origin)
        try:
            request = widget.parse(payload)
        except ValidationFailed as error:
            if is_identifier(claimed):
                self._rejections.record(claimed, "widget", [refused(error, payload)])
            raise
        plugin_id = request.data.chatbot_id or self._default_plugin_id
        config = published.config if published else None
        return self._stored(widget.to_canonical(request, plugin_id, config, info))

    def plugin(self, plugin_id: str, payload: dict[str, Any], info: RequestInfo) -> Outcome:
        if not is_identifier(plugin_id):
            raise ValidationFailed(
                "Invalid plugin id", [{"field": "plugin_id", "message": "not a plugin id"}]
            )
        published = self._directory.require(plugin_id)
        self._check_origin(published, info.origin)
        try:
            events = plugin.to_canonical(plugin.parse(payload), plugin_id, published.config, info)
        except ValidationFailed as error:
            self._rejections.record(plugin_id, "plugin", [refused(error, payload)])
            raise
        self._sink.put_atomic(events)
        return Outcome(accepted=len(events))

    def segment(
        self,
        route: segment.Route,
        payload: dict[str, Any],
        authorization: str | None,
        info: RequestInfo,
    ) -> Outcome:
        write_key = segment.write_key_from(authorization, payload)
        plugin_id = (
            self._directory.plugin_for_write_key(write_key) if segment.is_write_key(write_key) else None
        )
        published = self._directory.config(plugin_id) if plugin_id else None
        if published is None:
            raise Unauthorized("Unknown write key")
        self._check_origin(published, info.origin)
        try:
            request = segment.parse(payload, route)
        except ValidationFailed as error:
            self._rejections.record(published.plugin_id, "segment", [refused(error, payload)])
            raise
        self._rejections.record(published.plugin_id, "segment", request.rejected)
        if not request.calls:
            raise ValidationFailed(
                "No call of the batch is valid", [rejection.reply() for rejection in request.rejected]
            )
        events = segment.to_canonical(request, published.plugin_id, published.config, info)
        if route == "batch":
            self._sink.put_all(events)
            return Outcome(len(events), request.rejected)
        return self._stored(events)
