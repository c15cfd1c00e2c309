"""Chatbot widget dialect: ``POST /api/analytics/track`` and its aliases and legacy GET form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator

from tracking.api_errors import BadRequest, ValidationFailed, validate
from tracking.ingest.commerce import WIDGET_COMMERCE, total_in_base
from tracking.models.canonical import (
    IDENTIFIER_MAX_BYTES,
    IDENTIFIER_PATTERN,
    MAX_AMOUNT,
    AbGroup,
    CanonicalEvent,
    Item,
    at_most_bytes,
    storable_decimal,
)
from tracking.models.config import PluginConfig
from tracking.models.request import URL_MAX, USER_AGENT_MAX, RequestInfo, client_event_id, new_event_ids
from tracking.models.widget import EVENT_TYPES
from tracking.payloads import check_numbers

EVENT_ALIASES = {"tracktrans": "purchase"}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_USER_AGENT_FIELDS = frozenset({"user_agent", "userAgent", "useragent"})
_MODEL = ConfigDict(extra="allow", coerce_numbers_to_str=True, defer_build=True)


class WidgetItem(BaseModel):
    model_config = _MODEL

    item_id: str | None = Field(None, max_length=128, validation_alias=AliasChoices("item_id", "id"))
    # A JSON number or a numeric string, held to the same rule as every number stored.
    value: Annotated[
        Decimal | None,
        Field(
            validation_alias=AliasChoices("value", "price"),
            allow_inf_nan=False,
            gt=-MAX_AMOUNT,
            lt=MAX_AMOUNT,
        ),
        AfterValidator(lambda value: None if value is None else storable_decimal(value)),
    ] = None
    quantity: int = Field(1, ge=1, le=1_000_000)
    currency: str | None = Field(None, min_length=1, max_length=3)


class WidgetData(BaseModel):
    model_config = _MODEL

    # The plugin: a string, never a number read as one (``12345`` is not plugin ``"12345"``).
    chatbot_id: Annotated[
        str | None,
        Field(None, min_length=1, max_length=512, pattern=IDENTIFIER_PATTERN, strict=True),
        at_most_bytes(IDENTIFIER_MAX_BYTES),
    ] = None
    items: list[WidgetItem] | None = Field(None, max_length=50)
    orderNum: str | None = Field(None, min_length=1, max_length=512)
    popup_version: str | None = Field(None, max_length=256)
    open_way: Literal["popup", "chat_button"] | None = None


class WidgetTrack(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    event: str = Field(max_length=50)
    token: str
    data: WidgetData = Field(default_factory=WidgetData)
    ab_test: bool = False

    @field_validator("event")
    @classmethod
    def _known_event(cls, event: str) -> str:
        event = EVENT_ALIASES.get(event, event)
        if event not in EVENT_TYPES:
            raise ValueError(
                f"unknown event type {event!r}; expected one of {', '.join(sorted(EVENT_TYPES))}"
            )
        return event

    @field_validator("token")
    @classmethod
    def _token_format(cls, token: str) -> str:
        if not _TOKEN.match(token):
            raise ValueError("token must be 8-128 characters of A-Z, a-z, 0-9, '_' and '-'")
        return token


_GROUPS: dict[str, AbGroup] = {"0": "control", "1": "test"}


def ab_group(token: str) -> AbGroup | None:
    """The token's last character picks the group: '0' control, '1' test, anything else none."""
    return _GROUPS.get(token[-1])


def payload_from_query(params: Mapping[str, str | None]) -> dict[str, Any]:
    """The legacy GET form: ``e`` event, ``u`` token, ``d`` URL-encoded JSON data."""
    from tracking.payloads import check_text, parse_json  # noqa: PLC0415 - the legacy GET path only

    payload: dict[str, Any] = {}
    if params.get("e") is not None:
        payload["event"] = params["e"]
    if params.get("u") is not None:
        payload["token"] = params["u"]
    raw = params.get("d")
    if raw not in (None, ""):
        payload["data"] = parse_json(raw, "d", judge_numbers=False)
    check_text(payload, "query")
    return payload


def parse(payload: dict[str, Any]) -> WidgetTrack:
    check_numbers(payload)
    if payload.get("data") is not None and not isinstance(payload["data"], dict):
        raise BadRequest("Invalid event payload: data must be a JSON object")
    if payload.get("data") is None:
        payload = {k: v for k, v in payload.items() if k != "data"}
    request = validate(WidgetTrack, payload)
    _check_string_caps(request.data)
    return request


def _check_string_caps(data: WidgetData) -> None:
    """URLs at most 2,048 and user agents at most 1,024 characters, wherever they sit in ``data``."""
    problems = []
    places: list[tuple[str, Mapping[str, Any]]] = [("data", data.model_extra or {})]
    places += [(f"data.items[{i}]", item.model_extra or {}) for i, item in enumerate(data.items or [])]
    for where, extra in places:
        for name, value in extra.items():
            if not isinstance(value, str):
                continue
            lowered = name.lower()
            if name in _USER_AGENT_FIELDS and len(value) > USER_AGENT_MAX:
                problems.append({"field": f"{where}.{name}", "message": "longer than 1024 characters"})
            elif (lowered.endswith("url") or lowered in ("referrer", "referer")) and len(value) > URL_MAX:
                problems.append({"field": f"{where}.{name}", "message": "longer than 2048 characters"})
    if problems:
        raise ValidationFailed("The payload failed validation", problems)


def plugin_id_hint(payload: Mapping[str, Any], default: str) -> str | None:
    """The plugin a raw payload claims (``data.chatbot_id``), for the origin check before validation:
    ``default`` when it names none, None when what it names is no plugin id (validation refuses it)."""
    data = payload.get("data")
    chatbot = data.get("chatbot_id") if isinstance(data, Mapping) else None
    if chatbot is None:
        return default
    return chatbot if isinstance(chatbot, str) and chatbot else None


def to_canonical(
    request: WidgetTrack, plugin_id: str, config: PluginConfig | None, info: RequestInfo
) -> list[CanonicalEvent]:
    data = request.data
    default_currency = config.default_currency if config else "EUR"
    items = tuple(
        Item(
            item_id=item.item_id,
            value=item.value,
            quantity=item.quantity,
            currency=(item.currency or default_currency).upper(),
        )
        for item in data.items or ()
    )
    order_id = data.orderNum if request.event == "purchase" else None
    event = CanonicalEvent(
        plugin_id=plugin_id,
        user_id=request.token,
        key=request.event,
        dialect="widget",
        event_id=client_event_id("o", order_id) if order_id else new_event_ids(info.received_at, 1)[0],
        event_time=info.received_at,
        received_at=info.received_at,
        ab_group=ab_group(request.token) if request.ab_test else None,
        commerce=WIDGET_COMMERCE.get(request.event),
        items=items,
        currency=items[0].currency if items else None,
        total_value_base=total_in_base(items, where=f"widget {request.event}") if items else None,
        order_id=order_id,
        properties=data.model_dump(exclude={"items"}, exclude_none=True),
        context=info.context(),
    )
    return [event]
