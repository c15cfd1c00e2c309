"""The widget dialect's published rules, one test each (tracking.ingest.dialects.widget)."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from tracking.api_errors import BadRequest, ValidationFailed
from tracking.ingest.dialects.widget import ab_group, parse, payload_from_query, to_canonical
from tracking.models.config import PluginConfig
from tracking.models.request import RequestInfo

INFO = RequestInfo(received_at=1_700_000_000_000, ip="203.0.113.9", origin="https://shop.example")
TOKEN = "user_abc123def456"


def call(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"event": "visitor", "token": TOKEN, "data": {"chatbot_id": "bot-1"}}
    payload.update(overrides)
    return payload


def fields(exc: pytest.ExceptionInfo[ValidationFailed]) -> list[str]:
    return [detail["field"] for detail in exc.value.details]


def canonical(payload: dict[str, Any], config: PluginConfig | None = None):  # type: ignore[no-untyped-def]
    request = parse(payload)
    (event,) = to_canonical(request, request.data.chatbot_id or "default", config, INFO)
    return event


@pytest.mark.parametrize(
    "event",
    [
        "visitor",
        "popup_displayed",
        "popup_opened",
        "bot_open",
        "convo_started",
        "message_sent",
        "message_like",
        "message_dislike",
        "click_through",
        "added_to_cart",
        "go_to_cart",
        "purchase",
        "error",
    ],
)
def test_every_allowed_event_type_is_accepted(event: str) -> None:
    assert parse(call(event=event)).event == event


def test_an_unknown_event_type_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse(call(event="signup"))
    assert fields(exc) == ["event"]
    assert "unknown event type 'signup'" in exc.value.details[0]["message"]


def test_tracktrans_is_stored_as_purchase() -> None:
    assert canonical(call(event="tracktrans")).key == "purchase"


def test_event_longer_than_50_characters_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse(call(event="x" * 51))
    assert fields(exc) == ["event"]


@pytest.mark.parametrize("missing", ["event", "token"])
def test_event_and_token_are_required(missing: str) -> None:
    payload = call()
    del payload[missing]
    with pytest.raises(ValidationFailed) as exc:
        parse(payload)
    assert fields(exc) == [missing]


@pytest.mark.parametrize("token", ["abcdefgh", "A" * 128, "user-abc_DEF-123"])
def test_valid_tokens(token: str) -> None:
    assert parse(call(token=token)).token == token


@pytest.mark.parametrize("token", ["abcdefg", "A" * 129, "user abc123", "user@abc123", "üser_abc123", ""])
def test_token_must_be_8_to_128_safe_characters(token: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse(call(token=token))
    assert fields(exc) == ["token"]


def test_data_that_is_not_an_object_is_a_bad_request_not_a_validation_error() -> None:
    with pytest.raises(BadRequest) as exc:
        parse(call(data=["chatbot_id"]))
    assert exc.value.code == "ANALYTICS_001"


def test_chatbot_id_is_the_plugin_and_at_most_512_characters() -> None:
    assert canonical(call(data={"chatbot_id": "c" * 512})).plugin_id == "c" * 512
    with pytest.raises(ValidationFailed) as exc:
        parse(call(data={"chatbot_id": "c" * 513}))
    assert fields(exc) == ["data.chatbot_id"]


def test_at_most_50_items() -> None:
    items = [{"item_id": f"sku-{i}", "value": 1} for i in range(50)]
    assert len(canonical(call(event="added_to_cart", data={"items": items})).items) == 50
    with pytest.raises(ValidationFailed) as exc:
        parse(call(event="added_to_cart", data={"items": [*items, {"item_id": "one-more"}]}))
    assert fields(exc) == ["data.items"]


def test_item_id_at_most_128_and_also_accepted_as_id() -> None:
    event = canonical(call(event="added_to_cart", data={"items": [{"id": "SKU-7", "value": 5}]}))
    assert event.items[0].item_id == "SKU-7"
    with pytest.raises(ValidationFailed) as exc:
        parse(call(data={"items": [{"value": 1}, {"value": 1}, {"value": 1}, {"item_id": "x" * 129}]}))
    assert fields(exc) == ["data.items[3].item_id"]


def test_item_value_is_numeric_and_also_accepted_as_price() -> None:
    event = canonical(call(event="purchase", data={"items": [{"item_id": "a", "price": 19.9}]}))
    assert event.items[0].value == Decimal("19.9")
    with pytest.raises(ValidationFailed) as exc:
        parse(call(data={"items": [{"item_id": "a", "value": "cheap"}]}))
    assert fields(exc) == ["data.items[0].value"]


def test_quantity_defaults_to_1_and_must_be_a_whole_number_of_at_least_1() -> None:
    assert canonical(call(event="purchase", data={"items": [{"value": 3}]})).items[0].quantity == 1
    for bad in (0, -2, 1.5, "two"):
        with pytest.raises(ValidationFailed) as exc:
            parse(call(data={"items": [{"value": 3, "quantity": bad}]}))
        assert fields(exc) == ["data.items[0].quantity"]


def test_currency_at_most_3_characters() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse(call(data={"items": [{"value": 3, "currency": "EURO"}]}))
    assert fields(exc) == ["data.items[0].currency"]


def test_order_number_at_most_512_characters() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse(call(event="purchase", data={"orderNum": "o" * 513}))
    assert fields(exc) == ["data.orderNum"]


@pytest.mark.parametrize("way", ["popup", "chat_button"])
def test_open_way_is_popup_or_chat_button(way: str) -> None:
    assert canonical(call(event="convo_started", data={"open_way": way})).properties["open_way"] == way


def test_any_other_open_way_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse(call(event="convo_started", data={"open_way": "email"}))
    assert fields(exc) == ["data.open_way"]


def test_urls_at_most_2048_and_user_agents_at_most_1024_characters() -> None:
    ok = {"page_url": "https://x.example/" + "p" * 2000, "user_agent": "u" * 1024}
    assert canonical(call(data=ok)).properties["page_url"] == ok["page_url"]
    with pytest.raises(ValidationFailed) as exc:
        parse(call(data={"url": "https://x.example/" + "p" * 2031, "user_agent": "u" * 1025}))
    assert sorted(fields(exc)) == ["data.url", "data.user_agent"]
    with pytest.raises(ValidationFailed) as exc:
        parse(call(data={"items": [{"value": 1, "image_url": "h" * 2049}]}))
    assert fields(exc) == ["data.items[0].image_url"]


@pytest.mark.parametrize(("last", "group"), [("0", "control"), ("1", "test"), ("7", None), ("z", None)])
def test_ab_group_comes_from_the_tokens_last_character(last: str, group: str | None) -> None:
    token = "user_abc123def45" + last
    assert ab_group(token) == group
    assert canonical(call(token=token, ab_test=True)).ab_group == group


def test_no_ab_group_without_ab_test() -> None:
    assert canonical(call(token="user_abc123def450")).ab_group is None


def test_purchase_total_is_converted_to_eur_with_the_static_rates() -> None:
    items = [
        {"item_id": "a", "value": 49.99, "quantity": 2, "currency": "USD"},
        {"item_id": "b", "value": 10, "currency": "GBP"},
        {"item_id": "c", "value": 1000, "currency": "huf"},
    ]
    event = canonical(call(event="purchase", data={"items": items, "orderNum": "ORD-1"}))
    # 49.99 x 2 x 0.92 + 10 x 1.17 + 1000 x 0.0026 = 91.9816 + 11.7 + 2.6
    assert event.total_value_base == Decimal("106.28")
    assert event.commerce == "purchase"


def test_a_price_without_currency_is_in_the_plugins_default_currency() -> None:
    items = [{"item_id": "a", "value": 100}]
    assert canonical(call(event="purchase", data={"items": items})).total_value_base == Decimal("100.00")
    chf = PluginConfig(default_currency="CHF")
    assert canonical(call(event="purchase", data={"items": items}), chf).total_value_base == Decimal("105.00")


def test_unknown_currency_logs_a_warning_and_stores_a_null_total(caplog: pytest.LogCaptureFixture) -> None:
    items = [
        {"item_id": "a", "value": 10, "currency": "EUR"},
        {"item_id": "b", "value": 5, "currency": "XYZ"},
    ]
    with caplog.at_level(logging.WARNING):
        event = canonical(call(event="purchase", data={"items": items}))
    assert event.total_value_base is None
    assert any("unknown currency" in record.message for record in caplog.records)


def test_a_purchase_with_an_order_number_is_keyed_by_it() -> None:
    event = canonical(call(event="purchase", data={"orderNum": "ORD-9"}))
    assert (event.event_id, event.order_id, event.counts_once_per_order) == ("o:ORD-9", "ORD-9", True)


def test_an_order_number_on_another_event_does_not_deduplicate() -> None:
    event = canonical(call(event="added_to_cart", data={"orderNum": "ORD-9"}))
    assert event.order_id is None
    assert event.event_id.startswith("g:")


def test_widget_event_is_stored_with_the_time_it_was_received() -> None:
    event = canonical(call())
    assert (event.event_time, event.received_at, event.dialect) == (
        INFO.received_at,
        INFO.received_at,
        "widget",
    )
    assert event.context["ip"] == "203.0.113.9"


def test_legacy_get_maps_e_u_d() -> None:
    payload = payload_from_query({"e": "purchase", "u": TOKEN, "d": '{"chatbot_id":"bot-1","orderNum":"7"}'})
    assert payload == {"event": "purchase", "token": TOKEN, "data": {"chatbot_id": "bot-1", "orderNum": "7"}}


def test_legacy_get_with_d_not_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        payload_from_query({"e": "visitor", "u": TOKEN, "d": "{chatbot_id:"})
