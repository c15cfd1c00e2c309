"""Ingest: admit, validate, normalize and store tracking calls of the three dialects, and record the
calls it refuses for the plugin they were meant for."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from tracking.api_errors import ApiError, Forbidden, Unauthorized, Unavailable, ValidationFailed
from tracking.ingest.agents import classified_context
from tracking.ingest.configs import PluginDirectory
from tracking.ingest.dialects import plugin, segment, widget, write_keys
from tracking.ingest.privacy import IpMode, private_context, scrubbed
from tracking.ingest.rejections import RejectionLog
from tracking.json_text import dumps_compact
from tracking.keys import write_key_budget
from tracking.models.canonical import CanonicalEvent, is_identifier
from tracking.models.config import PublishedConfig
from tracking.models.rejections import OPTED_OUT, Rejection, cut_payload
from tracking.models.request import RequestInfo
from tracking.models.storage_failures import StorageUnavailable
from tracking.ratelimit import RateLimiter

# No write starts later than this after the request arrived: the write and, if its answer is lost,
# the read that confirms it then still fit in the function's timeout (see storage/dynamo.py).
WRITE_START_DEADLINE_MS = 4_000


class EventSink(Protocol):
    def put(self, event: CanonicalEvent) -> bool: ...
    def put_all(self, events: Sequence[CanonicalEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call came to: how many of its calls were valid (stored now or before), and which were
    refused (only a batch may hold both)."""

    accepted: int
    rejected: tuple[Rejection, ...] = ()


def refused(error: ApiError, payload: Any) -> Rejection:
    return Rejection(error.code, error.message, tuple(error.details), cut_payload(dumps_compact(payload)))


# Where a call of any dialect names a person.
_ID_FIELDS = ("userId", "anonymousId", "previousId", "user_id", "token")


def _call_of(rejection: Rejection, payload: Any, calls: Any) -> Any:
    """The call a rejection refused: its place in a batch, else the whole payload."""
    if rejection.index is not None and isinstance(calls, list) and 0 <= rejection.index < len(calls):
        return calls[rejection.index]
    return payload


def _ids_of(call: Any) -> list[str]:
    """The ids a call names (a plugin call's list of events included)."""
    if not isinstance(call, dict):
        return []
    found = [value for name in _ID_FIELDS if isinstance(value := call.get(name), str)]
    events = call.get("events")
    if isinstance(events, list):
        found += [value for event in events if isinstance(event, dict) for value in _ids_of(event)]
    return found


class IngestService:
    def __init__(
        self,
        *,
        directory: PluginDirectory,
        sink: EventSink,
        limiter: RateLimiter,
        rejections: RejectionLog,
        default_plugin_id: str,
        key_limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._sink = sink
        self._limiter = limiter
        self._key_limiter = key_limiter
        self._rejections = rejections
        self._default_plugin_id = default_plugin_id
        self._clock = clock

    def _before_writing(self, info: RequestInfo) -> None:
        """Storage was so slow already that a write might not be answered in time: refuse (nothing
        was written, the client may retry) rather than start one."""
        if int(self._clock() * 1000) - info.received_at > WRITE_START_DEADLINE_MS:
            raise Unavailable("Storage is too slow to take this call now; retry later")

    def admit(self, client_ip: str | None) -> None:
        """The per-IP rate limit, checked before the body is even parsed; and the moment to write the
        rejection counts this container has had waiting."""
        self._rejections.flush_due()
        if client_ip:
            self._limiter.check(client_ip)

    def admit_source(self, client_ip: str | None, authorization: str | None) -> None:
        """A Segment call: metered per write key when its Authorization names one this service knows
        (a server's source sends everything from one IP), else per IP as every other call is."""
        key = self._known_write_key(authorization)
        if key is None or self._key_limiter is None:
            self.admit(client_ip)
            return
        self._rejections.flush_due()
        self._key_limiter.check(write_key_budget(key))

    def _known_write_key(self, authorization: str | None) -> str | None:
        if not authorization:
            return None
        try:
            key = write_keys.write_key_from(authorization, {})
        except Unauthorized:
            return None  # answered 401 once the call is read
        known = write_keys.is_write_key(key) and self._directory.plugin_for_write_key(key) is not None
        return key if known else None

    @staticmethod
    def _check_origin(published: PublishedConfig | None, origin: str | None) -> None:
        if origin is not None and published is not None and not published.config.allows_origin(origin):
            raise Forbidden(f"Origin {origin[:200]!r} is not allowed for this plugin")

    def check_preflight(self, plugin_id: str, origin: str | None) -> None:
        """CORS preflight of a plugin route: answered only for origins the plugin allows."""
        published = self._directory.config(plugin_id) if is_identifier(plugin_id) else None
        self._check_origin(published, origin)

    def _opted_out(
        self, published: PublishedConfig | None, dialect: str, info: RequestInfo, calls: int
    ) -> bool:
        """A call sent with DNT or GPC to a plugin that respects them: counted (``OPTED_OUT``, with
        nothing of it kept) and answered as stored."""
        if published is None or not info.do_not_track or not published.config.privacy.respect_dnt:
            return False
        self._rejections.count(published.plugin_id, dialect, OPTED_OUT, calls)
        return True

    def _ip_mode(self, plugin_id: str) -> IpMode:
        published = self._directory.config(plugin_id)
        return published.config.privacy.ip if published is not None else "truncate"

    def _stored(self, events: list[CanonicalEvent], info: RequestInfo) -> Outcome:
        """One call's event, stored once (a repeat of a stored one is not stored again)."""
        kept = self._unsuppressed(events)
        if kept:
            self._before_writing(info)
        for event in kept:
            self._sink.put(event)
        return Outcome(accepted=len(events))

    def _record(self, plugin_id: str, dialect: str, rejections: Sequence[Rejection], payload: Any) -> None:
        """Record a request's refused calls for the plugin; those of a suppressed id are counted and
        listed without anything of the call (the person asked to be forgotten)."""
        if not rejections:
            return
        mode = self._ip_mode(plugin_id)
        rejections = [replace(r, payload=scrubbed(r.payload, mode)) for r in rejections]
        try:
            people = self._directory.people(plugin_id)
        except StorageUnavailable:  # who is suppressed cannot be told: keep nothing of any call
            self._rejections.record(plugin_id, dialect, [rejection.redacted() for rejection in rejections])
            return
        if people.has_suppressions:
            calls = payload.get("batch") if isinstance(payload, dict) else None
            rejections = [
                rejection.redacted()
                if people.suppresses(*_ids_of(_call_of(rejection, payload, calls)))
                else rejection
                for rejection in rejections
            ]
        self._rejections.record(plugin_id, dialect, rejections)

    def _unsuppressed(self, events: list[CanonicalEvent]) -> list[CanonicalEvent]:
        """The events of ids nobody asked to forget (a suppressed id's calls are answered as if stored,
        so its clients do not retry, and leave nothing behind), as they are stored: the caller's
        address kept as the plugin says, the agent classified."""
        if not events:
            return events
        plugin_id = events[0].plugin_id
        people = self._directory.people(plugin_id)
        mode = self._ip_mode(plugin_id)
        stored = []
        for event in events:
            if people.suppresses(event.user_id, event.anonymous_id, event.previous_id):
                continue
            context = classified_context(private_context(event.context, mode))
            stored.append(
                event if context is event.context else event.model_copy(update={"context": context})
            )
        return stored

    def widget(self, payload: dict[str, Any], info: RequestInfo) -> Outcome:
        claimed = widget.plugin_id_hint(payload, self._default_plugin_id)
        known = claimed if claimed is not None and is_identifier(claimed) else None
        published = self._directory.config(known) if known else None
        self._check_origin(published, info.origin)
        if self._opted_out(published, "widget", info, 1):
            return Outcome(accepted=1)
        try:
            request = widget.parse(payload)
        except ValidationFailed as error:
            if known:
                self._record(known, "widget", [refused(error, payload)], payload)
            raise
        plugin_id = request.data.chatbot_id or self._default_plugin_id
        config = published.config if published else None
        return self._stored(widget.to_canonical(request, plugin_id, config, info), info)

    def plugin(self, plugin_id: str, payload: dict[str, Any], info: RequestInfo) -> Outcome:
        if not is_identifier(plugin_id):
            raise ValidationFailed(
                "Invalid plugin id", [{"field": "plugin_id", "message": "not a plugin id"}]
            )
        published = self._directory.require(plugin_id)
        self._check_origin(published, info.origin)
        calls = _calls(payload.get("events"))
        if self._opted_out(published, "plugin", info, calls):
            return Outcome(accepted=calls)
        try:
            events = plugin.to_canonical(plugin.parse(payload), plugin_id, published.config, info)
        except ValidationFailed as error:
            self._record(plugin_id, "plugin", [refused(error, payload)], payload)
            raise
        kept = self._unsuppressed(events)
        if kept:
            self._before_writing(info)
            # Calls without a message_id in one transaction (a 503 leaves none of them behind); those
            # with one each by its claim (a retry stores only what is missing, and counts it once).
            self._sink.put_all(kept)
        return Outcome(accepted=len(events))

    def segment(
        self,
        route: segment.Route,
        payload: dict[str, Any],
        authorization: str | None,
        info: RequestInfo,
        query_write_key: str | None = None,
    ) -> Outcome:
        write_key = write_keys.write_key_from(authorization, payload, query_write_key)
        plugin_id = (
            self._directory.plugin_for_write_key(write_key) if write_keys.is_write_key(write_key) else None
        )
        published = self._directory.config(plugin_id) if plugin_id else None
        if published is None:
            raise Unauthorized("Unknown write key")
        self._check_origin(published, info.origin)
        calls = _calls(payload.get("batch") if route == "batch" else None)
        if self._opted_out(published, "segment", info, calls):
            return Outcome(calls)
        try:
            request = segment.parse(payload, route, info.context())
            events, unusable = segment.to_canonical(request, published.plugin_id, published.config, info)
        except ValidationFailed as error:
            self._record(published.plugin_id, "segment", [refused(error, payload)], payload)
            raise
        rejected = tuple(sorted((*request.rejected, *unusable), key=lambda r: r.index or 0))
        self._record(published.plugin_id, "segment", rejected, payload)
        if not events:
            raise ValidationFailed(
                "No call of the batch is valid", [rejection.reply() for rejection in rejected]
            )
        if route == "batch":
            kept = self._unsuppressed(events)
            if kept:
                self._before_writing(info)
                self._sink.put_all(kept)
            return Outcome(len(events), rejected)
        return self._stored(events, info)


def _calls(listed: Any) -> int:
    """How many calls a request holds: its list's length (a plugin's events, a Segment batch), else 1."""
    return len(listed) if isinstance(listed, list) else 1
