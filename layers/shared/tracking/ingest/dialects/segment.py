"""Segment-spec dialect (analytics.js, Customer.io): ``/v1/track``, ``/v1/identify``, ``/v1/batch``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tracking.compact import dumps_compact
from tracking.errors import PayloadTooLarge, Unauthorized, ValidationFailed, validate
from tracking.ingest.commerce import SEGMENT_COMMERCE, segment_items, segment_order_total, total_in_base
from tracking.models.canonical import CanonicalEvent, Identifier, Kind, Scalar, as_scalar
from tracking.models.config import WRITE_KEY, PluginConfig
from tracking.models.request import RequestInfo

logger = logging.getLogger(__name__)

CALL_MAX_BYTES = 32 * 1024
BATCH_MAX_BYTES = 500 * 1024
Route = Literal["track", "identify", "batch"]
_KEY_OF_KIND = {
    "identify": "identify",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
}
_ORDER_EVENTS = frozenset({"checkout", "purchase", "order_updated", "refund", "cancel"})


class SegmentCall(BaseModel):
    """One call of the spec; unknown fields (``version``, ``channel``, ...) are ignored."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, defer_build=True)

    type: Kind | None = None
    event: str | None = Field(None, min_length=1, max_length=256)
    userId: Identifier | None = None
    anonymousId: Identifier | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    messageId: str | None = Field(None, min_length=1, max_length=256)
    timestamp: datetime | None = None
    sentAt: datetime | None = None
    originalTimestamp: datetime | None = None
    name: str | None = Field(None, max_length=256)

    @model_validator(mode="after")
    def _required(self) -> SegmentCall:
        if not self.userId and not self.anonymousId:
            raise ValueError("userId or anonymousId is required")
        if self.type in (None, "track") and not self.event:
            raise ValueError("event is required for a track call")
        return self


class SegmentBatch(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    batch: list[dict[str, Any]] = Field(min_length=1)
    context: dict[str, Any] | None = None
    sentAt: datetime | None = None


def write_key_from(authorization: str | None, payload: dict[str, Any]) -> str:
    """HTTP Basic with the write key as user name, else ``writeKey`` in the body."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "basic" or not credentials.strip():
            raise Unauthorized("Authorization must be HTTP Basic with the write key as user name")
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("Authorization is not valid base64") from None
        key = decoded.partition(":")[0]
    else:
        raw = payload.get("writeKey")
        key = raw if isinstance(raw, str) else ""
    if not key:
        raise Unauthorized("A write key is required (HTTP Basic user name or writeKey)")
    return key


def is_write_key(text: str) -> bool:
    return WRITE_KEY.match(text) is not None


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def event_time(call: SegmentCall, batch_sent_at: datetime | None, received_at: int) -> int:
    """``receivedAt - (sentAt - originalTimestamp)``: the device's time corrected for its clock skew."""
    sent = call.sentAt or batch_sent_at
    device = call.originalTimestamp or call.timestamp
    if device is not None and sent is not None:
        return received_at - (_ms(sent) - _ms(device))
    if device is not None:
        return _ms(device)
    return received_at


def _value(call: SegmentCall, key: str, config: PluginConfig) -> Scalar | None:
    tracked = config.tracked_key(key)
    prop = tracked.value_property if tracked else "value"
    properties = call.properties or {}
    raw = properties.get(prop)
    if tracked is not None:
        try:
            return tracked.accept(raw, prop in properties)
        except ValueError as exc:
            # Segment libraries drop a rejected batch for good, so one odd property does not cost the
            # call: it is stored without a value and the mismatch is logged.
            logger.warning("segment value does not fit the key", extra={"key": key, "reason": str(exc)})
            return None
    try:
        return as_scalar(raw)
    except ValueError:
        return None


def _event_id(raw: dict[str, Any], call: SegmentCall) -> str:
    if call.messageId:
        return f"m:{call.messageId}"
    # No messageId: the call's own content identifies it, so a re-sent call still lands once.
    digest = hashlib.sha256(dumps_compact(raw).encode()).hexdigest()[:32]
    return f"h:{digest}"


@dataclass(frozen=True, slots=True)
class ParsedCall:
    raw: dict[str, Any]  # as the client sent it: its content identifies a call without a messageId
    kind: Kind
    call: SegmentCall


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    """One call, or a batch's calls with what the batch gives them all."""

    calls: tuple[ParsedCall, ...]
    context: dict[str, Any] | None = None
    sent_at: datetime | None = None


_CALL_TYPES: tuple[Kind, ...] = ("track", "identify", "page", "screen", "group", "alias")


def parse(payload: dict[str, Any], route: Route) -> SegmentRequest:
    """``/v1/track`` and ``/v1/identify`` carry one call of that type, ``/v1/batch`` a list of calls of
    any type; every call is validated and the 422 names every bad field of every call."""
    if route != "batch":
        call = validate(SegmentCall, {**payload, "type": route})
        return SegmentRequest((ParsedCall(payload, route, call),))
    batch = validate(SegmentBatch, payload)
    calls, problems = [], []
    for index, raw in enumerate(batch.batch):
        prefix = f"batch[{index}]"
        if len(dumps_compact(raw).encode()) > CALL_MAX_BYTES:
            raise PayloadTooLarge(f"Call {prefix} is over {CALL_MAX_BYTES} bytes")
        kind = raw.get("type")
        if kind not in _CALL_TYPES:
            problems.append(
                {"field": f"{prefix}.type", "message": f"must be one of {', '.join(_CALL_TYPES)}"}
            )
            continue
        try:
            calls.append(ParsedCall(raw, kind, validate(SegmentCall, {**raw, "type": kind}, prefix)))
        except ValidationFailed as exc:
            problems.extend(exc.details)
    if problems:
        raise ValidationFailed("The payload failed validation", problems)
    return SegmentRequest(tuple(calls), batch.context, batch.sentAt)


def to_canonical(
    request: SegmentRequest, plugin_id: str, config: PluginConfig, info: RequestInfo
) -> list[CanonicalEvent]:
    return [_canonical(parsed, request, plugin_id, config, info) for parsed in request.calls]


def _canonical(
    parsed: ParsedCall, request: SegmentRequest, plugin_id: str, config: PluginConfig, info: RequestInfo
) -> CanonicalEvent:
    call, kind = parsed.call, parsed.kind
    key = call.event if kind == "track" and call.event else _KEY_OF_KIND.get(kind, kind)
    properties = (call.traits if kind == "identify" else call.properties) or {}
    commerce = SEGMENT_COMMERCE.get(key) if kind == "track" else None
    items = tuple(segment_items(properties, commerce, config.default_currency)) if commerce else ()
    total = None
    if any(item.value is not None for item in items):
        total = total_in_base(items, where=f"segment {key}")
    elif commerce in _ORDER_EVENTS:
        total = segment_order_total(properties, config.default_currency)
    raw_order = properties.get("order_id")
    order_id = str(raw_order)[:512] if commerce == "purchase" and isinstance(raw_order, (str, int)) else None
    context = {**(request.context or {}), **(call.context or {})}
    for name, value in info.context().items():
        context.setdefault(name, value)
    return CanonicalEvent(
        plugin_id=plugin_id,
        user_id=call.userId or call.anonymousId or "",
        key=key,
        kind=kind,
        dialect="segment",
        event_id=_event_id(parsed.raw, call),
        value=_value(call, key, config) if kind == "track" else None,
        event_time=event_time(call, request.sent_at, info.received_at),
        received_at=info.received_at,
        commerce=commerce,
        items=items,
        currency=items[0].currency if items else None,
        total_value_base=total,
        order_id=order_id or None,
        properties=properties,
        context=context,
    )
