"""Segment-spec dialect, as Segment's, Customer.io's and RudderStack's libraries and analytics.js send
it: ``track``, ``identify``, ``page``, ``screen``, ``group`` and ``alias`` calls, one per request or
in a batch that is judged call by call."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tracking.api_errors import (
    ApiError,
    PayloadTooLarge,
    ValidationFailed,
    validate,
    validation_details,
)
from tracking.ingest import commerce as shop
from tracking.json_text import dumps_compact
from tracking.models.canonical import (
    IDENTIFIER_PATTERN,
    KEY_MAX_BYTES,
    CanonicalEvent,
    Identifier,
    Kind,
    Scalar,
    TimeAdjusted,
    as_scalar,
    at_most_bytes,
    capped_time,
)
from tracking.models.config import PluginConfig
from tracking.models.rejections import Rejection, cut_payload
from tracking.models.request import RequestInfo, client_event_id, new_event_ids
from tracking.payloads import check_numbers, number_details

logger = logging.getLogger(__name__)

CALL_MAX_BYTES = 32 * 1024
BATCH_MAX_BYTES = 500 * 1024
BATCH_MAX_CALLS = 2_500
# What one batch may store, at most, as a multiple of its own size (the batch-level context and what
# the request attaches, such as its user agent, are stored with every call).
STORED_MAX_MULTIPLE = 8
OVER_BUDGET = (
    f"The batch would store more than {STORED_MAX_MULTIPLE} times its own size (its context is stored "
    "with every call): send fewer calls per batch, or the context with each call"
)
# A route carries one call of its type, or (batch) a list of calls of any type.
Route = Literal["track", "identify", "page", "screen", "group", "alias", "batch"]
CALL_TYPES: tuple[Kind, ...] = ("track", "identify", "page", "screen", "group", "alias")
_ORDER_EVENTS = frozenset({"checkout", "purchase", "order_updated", "refund", "cancel"})
# Identifiers a client may send empty, meaning none.
_IDS = frozenset({"userId", "anonymousId", "previousId", "groupId", "messageId"})
# A client's timestamp as sent: ISO 8601 text (what every library sends), or epoch seconds.
ClientTime = str | int | float | None
# What a datetime can hold (years 1 to 9999): beyond, a client's time is not representable.
_FIRST_MS = int(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
_LAST_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)


class SegmentCall(BaseModel):
    """One call of the spec; unknown fields (``version``, ``channel``, ...) are ignored."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    type: Kind
    # The stored key of a track call: no control characters (keys are parts of storage keys).
    event: Annotated[
        str | None,
        Field(None, min_length=1, max_length=256, pattern=IDENTIFIER_PATTERN),
        at_most_bytes(KEY_MAX_BYTES),
    ] = None
    userId: Identifier | None = None
    anonymousId: Identifier | None = None
    previousId: Identifier | None = None
    groupId: Identifier | None = None
    name: str | None = Field(None, max_length=256)
    category: str | None = Field(None, max_length=256)
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    messageId: str | None = Field(None, min_length=1, max_length=256)
    timestamp: ClientTime = None
    sentAt: ClientTime = None
    originalTimestamp: ClientTime = None

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, raw: Any) -> Any:
        """An empty id is no id (RudderStack's browser SDK sends ``"userId": ""`` until identify)."""
        if isinstance(raw, dict) and any(raw.get(name) == "" for name in _IDS):
            return {name: value for name, value in raw.items() if not (name in _IDS and value == "")}
        return raw

    @model_validator(mode="after")
    def _required(self) -> SegmentCall:
        if self.type == "alias":
            if not self.previousId or not self.userId:
                raise ValueError("previousId and userId are required for an alias call")
        elif not self.userId and not self.anonymousId:
            raise ValueError("userId or anonymousId is required")
        if self.type == "track" and not self.event:
            raise ValueError("event is required for a track call")
        if self.type == "group" and not self.groupId:
            raise ValueError("groupId is required for a group call")
        return self


class SegmentBatch(BaseModel):
    """``/v1/batch`` (also ``/v1/import`` and analytics.js's ``/v1/b``); calls are judged one by one."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    batch: list[Any] = Field(min_length=1)
    context: dict[str, Any] | None = None
    sentAt: ClientTime = None


def client_ms(raw: ClientTime) -> int | None:
    """A client's timestamp in epoch ms; None when it is not a representable time."""
    try:
        if isinstance(raw, bool):
            return None
        if isinstance(raw, (int, float)):
            if not math.isfinite(raw):
                return None
            ms = int(raw * 1000) if abs(raw) < 1e11 else int(raw)
            return ms if _FIRST_MS <= ms <= _LAST_MS else None
        if isinstance(raw, str):
            moment = datetime.fromisoformat(raw.strip())
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def event_time(
    call: SegmentCall, batch_sent_at: ClientTime, received_at: int
) -> tuple[int, TimeAdjusted | None]:
    """The contract's event time: an explicit ``timestamp`` as given (historical imports keep their
    time); else ``receivedAt - (sentAt - originalTimestamp)`` (the device clock's skew removed); else
    ``receivedAt``; then capped (see :func:`~tracking.models.canonical.capped_time`)."""
    sent = call.sentAt if call.sentAt is not None else batch_sent_at
    claimed: int | None
    if call.timestamp is not None:
        claimed = client_ms(call.timestamp)
    elif call.originalTimestamp is not None and sent is not None:
        device, sent_ms = client_ms(call.originalTimestamp), client_ms(sent)
        claimed = None if device is None or sent_ms is None else received_at - (sent_ms - device)
    else:
        claimed = received_at
    return capped_time(claimed, received_at)


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


@dataclass(frozen=True, slots=True)
class ParsedCall:
    index: int | None  # its place in a batch
    raw: dict[str, Any]  # as the client sent it: its content identifies a call without a messageId
    call: SegmentCall


@dataclass(frozen=True, slots=True)
class SegmentRequest:
    """The valid calls of a request, the ones refused, and what a batch gives all its calls."""

    calls: tuple[ParsedCall, ...]
    rejected: tuple[Rejection, ...] = ()
    context: dict[str, Any] | None = None
    sent_at: ClientTime = None


def parse(payload: dict[str, Any], route: Route, attached: Mapping[str, Any] | None = None) -> SegmentRequest:
    """A single-call route's call must be valid (a 422 names every bad field); a batch keeps its
    valid calls and lists the others as rejections, each with the contract's error.

    ``attached`` is what the request adds to every call it stores (the caller's IP, user agent, ...):
    with the batch's own ``context``, which every call inherits, it counts toward each call's 32 KB
    and toward what the whole request may store (``STORED_MAX_MULTIPLE`` times its own size)."""
    attached_bytes = _json_bytes(attached) if attached else 0
    if route != "batch":
        check_numbers(payload)
        call = validate(SegmentCall, {**payload, "type": route})
        return SegmentRequest((ParsedCall(None, payload, call),))
    check_numbers({name: value for name, value in payload.items() if name != "batch"})
    batch = validate(SegmentBatch, payload)
    if len(batch.batch) > BATCH_MAX_CALLS:
        raise PayloadTooLarge(f"A batch holds at most {BATCH_MAX_CALLS} calls")
    shared = {name: _json_bytes({name: value}) for name, value in (batch.context or {}).items()}
    texts = [dumps_compact(raw) for raw in batch.batch]
    sizes = [_utf8_bytes(text) for text in texts]
    budget = STORED_MAX_MULTIPLE * (sum(sizes) + sum(shared.values()) + attached_bytes)
    calls: list[ParsedCall] = []
    rejected: list[Rejection] = []
    stored = 0
    for index, (raw, text, size) in enumerate(zip(batch.batch, texts, sizes, strict=True)):
        own = raw.get("context") if isinstance(raw, dict) else None
        inherited = sum(n for name, n in shared.items() if not (isinstance(own, dict) and name in own))
        weight = size + inherited + attached_bytes
        outcome = _judge(index, raw, text, weight)
        if isinstance(outcome, ParsedCall) and stored + weight > budget:
            outcome = _refused(index, raw, text, PayloadTooLarge(OVER_BUDGET))
        if isinstance(outcome, Rejection):
            rejected.append(outcome)
        else:
            stored += weight
            calls.append(outcome)
    return SegmentRequest(tuple(calls), tuple(rejected), batch.context, batch.sentAt)


def _utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def _json_bytes(value: Any) -> int:
    return _utf8_bytes(dumps_compact(value))


def _refused(index: int, raw: Any, text: str, error: ApiError) -> Rejection:
    """A call of a batch refused with the contract's ``error``, listed with its place and messageId."""
    message_id = raw.get("messageId") if isinstance(raw, dict) else None
    message_id = message_id if isinstance(message_id, str) else None
    return Rejection(error.code, error.message, tuple(error.details), cut_payload(text), index, message_id)


def _judge(index: int, raw: Any, text: str, weight: int) -> ParsedCall | Rejection:
    """One call of a batch: valid, or refused with the contract's error. ``weight`` is what storing
    it takes: the call, the batch context it inherits, and what the request attaches."""

    def refused(error: ApiError) -> Rejection:
        return _refused(index, raw, text, error)

    if not isinstance(raw, dict):
        return refused(
            ValidationFailed("A call must be a JSON object", [{"field": "body", "message": "not an object"}])
        )
    if weight > CALL_MAX_BYTES:
        return refused(
            PayloadTooLarge(f"A call is at most {CALL_MAX_BYTES} bytes, with the batch context it inherits")
        )
    numbers = number_details(raw)
    if numbers:
        return refused(ValidationFailed("A number cannot be stored", numbers))
    kind = raw.get("type")
    if kind not in CALL_TYPES:
        detail = {"field": "type", "message": f"must be one of {', '.join(CALL_TYPES)}"}
        return refused(ValidationFailed("The call failed validation", [detail]))
    try:
        call = SegmentCall.model_validate({**raw, "type": kind})
    except ValidationError as exc:
        details = validation_details(exc.errors(include_url=False, include_input=False))
        return refused(ValidationFailed("The call failed validation", details))
    return ParsedCall(index, raw, call)


def to_canonical(
    request: SegmentRequest, plugin_id: str, config: PluginConfig, info: RequestInfo
) -> tuple[list[CanonicalEvent], list[Rejection]]:
    """Each valid call's event; a call whose content cannot be normalized (a price no table can hold,
    sent as text) is refused alone, as a rejection of its own."""
    fresh = new_event_ids(info.received_at, len(request.calls))
    events: list[CanonicalEvent] = []
    rejected: list[Rejection] = []
    for parsed, fresh_id in zip(request.calls, fresh, strict=True):
        try:
            events.append(_canonical(parsed, request, plugin_id, config, info, fresh_id=fresh_id))
        except ValidationFailed as error:
            if parsed.index is None:
                raise
            rejected.append(_refused(parsed.index, parsed.raw, dumps_compact(parsed.raw), error))
    return events, rejected


def _traits(call: SegmentCall, context: dict[str, Any]) -> dict[str, Any]:
    """A group call's traits are the group's; any other call's are the user's: ``context.traits``
    (RudderStack's libraries put identify traits only there), overridden by the call's own."""
    if call.type == "group":
        return call.traits or {}
    in_context = context.get("traits")
    return {**(in_context if isinstance(in_context, dict) else {}), **(call.traits or {})}


def _event_id(parsed: ParsedCall, order_id: str | None, fresh_id: str) -> str:
    """The id that makes a repeat of the call land on the stored event: its order (an order counts
    once per plugin, whatever sent it), its messageId, or, without one, its content when it carries
    its own timestamp (a retry); else a fresh id (two such calls are two events)."""
    if order_id:
        return client_event_id("o", order_id)
    if parsed.call.messageId:
        return client_event_id("m", parsed.call.messageId)
    if parsed.call.timestamp is not None:
        content = json.dumps(parsed.raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return f"h:{hashlib.sha256(content.encode()).hexdigest()[:32]}"
    return fresh_id


def _canonical(
    parsed: ParsedCall,
    request: SegmentRequest,
    plugin_id: str,
    config: PluginConfig,
    info: RequestInfo,
    *,
    fresh_id: str,
) -> CanonicalEvent:
    call = parsed.call
    kind = call.type
    key = call.event if kind == "track" and call.event else kind
    properties = call.properties or {}
    commerce = shop.SEGMENT_COMMERCE.get(key) if kind == "track" else None
    items = tuple(shop.segment_items(properties, commerce, config.default_currency)) if commerce else ()
    if commerce in _ORDER_EVENTS:
        total = shop.segment_order_total(properties, items, config.default_currency)
    elif any(item.value is not None for item in items):
        total = shop.total_in_base(items, where=f"segment {key}")
    else:
        total = None
    raw_order = properties.get("order_id")
    order_id = str(raw_order)[:512] if commerce == "purchase" and isinstance(raw_order, (str, int)) else None
    context = {**(request.context or {}), **(call.context or {})}
    for name, known in info.context().items():
        context.setdefault(name, known)
    at, adjusted = event_time(call, request.sent_at, info.received_at)
    event_id = _event_id(parsed, order_id, fresh_id)
    client_times = {
        name: raw
        for name, raw in (
            ("timestamp", call.timestamp),
            ("sentAt", call.sentAt if call.sentAt is not None else request.sent_at),
            ("originalTimestamp", call.originalTimestamp),
        )
        if raw is not None
    }
    value: Scalar | None = None
    if kind == "track":
        value = _value(call, key, config)
    elif kind in ("page", "screen") and call.name:
        value = call.name
    return CanonicalEvent(
        plugin_id=plugin_id,
        user_id=call.userId or call.anonymousId or "",
        key=key,
        kind=kind,
        dialect="segment",
        event_id=event_id,
        value=value,
        event_time=at,
        received_at=info.received_at,
        time_adjusted=adjusted,
        ab_group=shop.experiment_group(key, properties) if kind == "track" else None,
        commerce=commerce,
        items=items,
        currency=items[0].currency if items else None,
        total_value_base=total,
        order_id=order_id or None,
        properties=properties if kind in ("track", "page", "screen") else {},
        context=context,
        anonymous_id=call.anonymousId,
        previous_id=call.previousId,
        group_id=call.groupId,
        name=call.name,
        category=call.category,
        traits=_traits(call, context),
        integrations=call.integrations or {},
        message_id=call.messageId or event_id,
        client_times=client_times,
    )
