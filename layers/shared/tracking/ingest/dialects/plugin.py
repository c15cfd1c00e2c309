"""Plugin dialect: ``Tracking.Event.track({key, value})`` as ``POST /v1/plugins/{plugin_id}/track``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tracking.api_errors import ValidationFailed, validate
from tracking.models.canonical import KEY_MAX_BYTES, CanonicalEvent, Identifier, at_most_bytes
from tracking.models.config import PluginConfig
from tracking.models.request import RequestInfo, client_event_id, new_event_ids
from tracking.payloads import check_numbers

MAX_BATCH = 100


class PluginTrack(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    key: Annotated[str, Field(min_length=1, max_length=128), at_most_bytes(KEY_MAX_BYTES)]
    value: Any = None
    user_id: Identifier
    # Unique per plugin, like Segment's messageId: a call whose id the plugin stored is counted once.
    message_id: str | None = Field(None, min_length=1, max_length=128)


class PluginBatch(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
    # Applies to every event that names no user of its own.
    user_id: Identifier | None = None


@dataclass(frozen=True, slots=True)
class PluginCall:
    """One event of the request: valid in shape (``track``), or the problems that make it not."""

    prefix: str  # "" for a single call, "events[3]" in a batch
    track: PluginTrack | None
    problems: tuple[Mapping[str, Any], ...] = ()

    def field(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name


@dataclass(frozen=True, slots=True)
class PluginRequest:
    calls: tuple[PluginCall, ...]


def parse(payload: dict[str, Any]) -> PluginRequest:
    """One call or ``{"events": [...]}``, each event's shape checked. A malformed batch is a 422 at
    once; a malformed event is kept with its problems, so the 422 names every bad event. A number no
    table can hold, anywhere, refuses the call (it is one call, all or nothing)."""
    check_numbers(payload)
    if "events" in payload:
        batch = validate(PluginBatch, payload)
        raw_events = [
            {"user_id": batch.user_id, **raw} if batch.user_id and "user_id" not in raw else raw
            for raw in batch.events
        ]
        prefixes = [f"events[{i}]" for i in range(len(raw_events))]
    else:
        raw_events, prefixes = [payload], [""]
    calls = []
    for raw, prefix in zip(raw_events, prefixes, strict=True):
        try:
            calls.append(PluginCall(prefix, validate(PluginTrack, raw, prefix)))
        except ValidationFailed as exc:
            calls.append(PluginCall(prefix, None, tuple(exc.details)))
    return PluginRequest(tuple(calls))


def to_canonical(
    request: PluginRequest, plugin_id: str, config: PluginConfig, info: RequestInfo
) -> list[CanonicalEvent]:
    """Every event checked against the published config; the whole call is rejected (422, every bad
    field named) if any is wrong."""
    events: list[CanonicalEvent] = []
    problems: list[Mapping[str, Any]] = []
    ids = new_event_ids(info.received_at, len(request.calls))
    for call, event_id in zip(request.calls, ids, strict=True):
        if call.track is None:
            problems.extend(call.problems)
            continue
        track = call.track
        tracked = config.tracked_key(track.key)
        if tracked is None:
            message = f"key {track.key!r} is not declared in the plugin config"
            problems.append({"field": call.field("key"), "message": message})
            continue
        try:
            value = tracked.accept(track.value, "value" in track.model_fields_set)
        except ValueError as exc:
            problems.append({"field": call.field("value"), "message": str(exc)})
            continue
        named = client_event_id("m", track.message_id) if track.message_id else None
        events.append(
            CanonicalEvent(
                plugin_id=plugin_id,
                user_id=track.user_id,
                key=track.key,
                dialect="plugin",
                event_id=named or event_id,
                message_id=track.message_id,
                value=value,
                event_time=info.received_at,
                received_at=info.received_at,
                context=info.context(),
            )
        )
    if problems:
        raise ValidationFailed("The payload failed validation", problems)
    return events
