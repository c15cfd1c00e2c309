"""Plugin dialect: ``Tracking.Event.track({key, value})`` as ``POST /v1/plugins/{plugin_id}/track``."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from tracking.commerce import MAX_AMOUNT
from tracking.dialects import URL_MAX, RequestInfo, decimal_of, new_event_ids, validate
from tracking.errors import ValidationFailed
from tracking.models.canonical import CanonicalEvent, Identifier, Scalar
from tracking.models.config import PluginConfig, TrackedKey

MAX_BATCH = 100
STRING_MAX = 1024


class PluginTrack(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    key: str = Field(min_length=1, max_length=128)
    value: Any = None
    user_id: Identifier


class PluginBatch(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)
    # Applies to every event that names no user of its own.
    user_id: Identifier | None = None


def check_value(tracked: TrackedKey, value: Any, present: bool) -> Scalar | None:
    """The value as stored, or ValueError saying why it does not fit the key's ``value_type``."""
    if not present or value is None:
        if tracked.needs_value:
            raise ValueError(f"a value is required for the aggregations {', '.join(tracked.aggregations)}")
        return None
    kind = tracked.value_type
    if kind == "number" or (kind is None and tracked.numeric):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number")
        return as_scalar(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if kind in ("url", "image"):
        if not isinstance(value, str) or len(value) > URL_MAX or not _is_http_url(value):
            raise ValueError(f"must be an http or https URL of at most {URL_MAX} characters")
        return value
    if kind == "string" and not isinstance(value, str):
        raise ValueError("must be a string")
    return as_scalar(value)


def as_scalar(value: Any) -> Scalar:
    """Any string, finite number or boolean (what a key without ``value_type`` accepts)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) >= MAX_AMOUNT:
            raise ValueError("must be a finite number below 1e18")
        return decimal_of(value)
    if isinstance(value, str):
        if len(value) > STRING_MAX:
            raise ValueError(f"must be at most {STRING_MAX} characters")
        return value
    raise ValueError("must be a string, a number or a boolean")


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in text


def to_canonical(
    payload: dict[str, Any], plugin_id: str, config: PluginConfig, info: RequestInfo
) -> list[CanonicalEvent]:
    """One call or ``{"events": [...]}``; every event is checked against the published config and the
    whole call is rejected (422, every bad field named) if any is wrong."""
    if "events" in payload:
        batch = validate(PluginBatch, payload)
        raw_events = [
            {"user_id": batch.user_id, **raw} if batch.user_id and "user_id" not in raw else raw
            for raw in batch.events
        ]
        prefixes = [f"events[{i}]" for i in range(len(raw_events))]
    else:
        raw_events, prefixes = [payload], [""]

    events, problems = [], []
    ids = new_event_ids(info.received_at, len(raw_events))
    for raw, prefix, event_id in zip(raw_events, prefixes, ids, strict=True):
        try:
            call = validate(PluginTrack, raw, prefix)
        except ValidationFailed as exc:
            problems.extend(exc.details)
            continue
        value_field = f"{prefix}.value" if prefix else "value"
        tracked = config.tracked_key(call.key)
        if tracked is None:
            field = f"{prefix}.key" if prefix else "key"
            problems.append(
                {"field": field, "message": f"key {call.key!r} is not declared in the plugin config"}
            )
            continue
        try:
            value = check_value(tracked, call.value, "value" in call.model_fields_set)
        except ValueError as exc:
            problems.append({"field": value_field, "message": str(exc)})
            continue
        events.append(
            CanonicalEvent(
                plugin_id=plugin_id,
                user_id=call.user_id,
                key=call.key,
                dialect="plugin",
                event_id=event_id,
                value=value,
                event_time=info.received_at,
                received_at=info.received_at,
                context=info.context(),
            )
        )
    if problems:
        raise ValidationFailed("The payload failed validation", problems)
    return events
