"""Ingest: admit, validate, normalize and store tracking calls of the three dialects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tracking.errors import Forbidden, Unauthorized, ValidationFailed
from tracking.ingest.configs import PluginDirectory
from tracking.ingest.dialects import plugin, segment, widget
from tracking.ingest.ratelimit import RateLimiter
from tracking.models.canonical import CanonicalEvent, is_identifier
from tracking.models.config import PublishedConfig
from tracking.models.request import RequestInfo


class EventSink(Protocol):
    def put(self, event: CanonicalEvent) -> bool: ...
    def put_batch(self, events: Sequence[CanonicalEvent], *, atomic: bool = False) -> None: ...


class IngestService:
    def __init__(
        self,
        directory: PluginDirectory,
        sink: EventSink,
        limiter: RateLimiter,
        default_plugin_id: str,
    ) -> None:
        self._directory = directory
        self._sink = sink
        self._limiter = limiter
        self._default_plugin_id = default_plugin_id

    def admit(self, client_ip: str | None) -> None:
        """The per-IP rate limit, checked before the body is even parsed."""
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

    def _stored(self, events: list[CanonicalEvent]) -> list[CanonicalEvent]:
        """One call's events, each stored once (a repeat of a stored one is not stored again)."""
        return [event for event in events if self._sink.put(event)]

    def widget(self, payload: dict[str, Any], info: RequestInfo) -> list[CanonicalEvent]:
        claimed = widget.plugin_id_hint(payload, self._default_plugin_id)
        published = self._directory.config(claimed) if is_identifier(claimed) else None
        self._check_origin(published, info.origin)
        request = widget.parse(payload)
        plugin_id = request.data.chatbot_id or self._default_plugin_id
        config = published.config if published else None
        return self._stored(widget.to_canonical(request, plugin_id, config, info))

    def plugin(self, plugin_id: str, payload: dict[str, Any], info: RequestInfo) -> list[CanonicalEvent]:
        if not is_identifier(plugin_id):
            raise ValidationFailed(
                "Invalid plugin id", [{"field": "plugin_id", "message": "not a plugin id"}]
            )
        published = self._directory.require(plugin_id)
        self._check_origin(published, info.origin)
        events = plugin.to_canonical(plugin.parse(payload), plugin_id, published.config, info)
        self._sink.put_batch(events, atomic=True)
        return events

    def segment(
        self,
        route: segment.Route,
        payload: dict[str, Any],
        authorization: str | None,
        info: RequestInfo,
    ) -> list[CanonicalEvent]:
        write_key = segment.write_key_from(authorization, payload)
        plugin_id = (
            self._directory.plugin_for_write_key(write_key) if segment.is_write_key(write_key) else None
        )
        published = self._directory.config(plugin_id) if plugin_id else None
        if published is None:
            raise Unauthorized("Unknown write key")
        self._check_origin(published, info.origin)
        request = segment.parse(payload, route)
        events = segment.to_canonical(request, published.plugin_id, published.config, info)
        if route == "batch":
            self._sink.put_batch(events)
            return events
        return self._stored(events)
