"""Segment-spec dialect: auth, limits, idempotency, clock skew and ecommerce normalization."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest

from tracking.errors import PayloadTooLarge, Unauthorized, ValidationFailed
from tracking.ingest.dialects.segment import (
    Route,
    SegmentCall,
    event_time,
    parse,
    to_canonical,
    write_key_from,
)
from tracking.models.canonical import CanonicalEvent
from tracking.models.config import PluginConfig
from tracking.models.request import RequestInfo

RECEIVED = 1_764_016_800_000  # 2025-11-24T20:40:00Z
INFO = RequestInfo(received_at=RECEIVED)
CONFIG = PluginConfig.model_validate(
    {
        "tracking": {
            "events": [
                {
                    "key": "Rated",
                    "name": {"en": "Rating"},
                    "aggregations": ["average"],
                    "value_property": "stars",
                },
            ]
        },
        "write_keys": ["wk_live_123"],
    }
)


def single(
    raw: dict[str, Any], route: Route, config: PluginConfig, plugin_id: str, info: RequestInfo
) -> CanonicalEvent:
    """One call of ``/v1/track`` or ``/v1/identify``, parsed and normalized."""
    (event,) = to_canonical(parse(raw, route), plugin_id, config, info)
    return event


def batch(
    payload: dict[str, Any], config: PluginConfig, plugin_id: str, info: RequestInfo
) -> list[CanonicalEvent]:
    """A ``/v1/batch`` payload, parsed and normalized."""
    return to_canonical(parse(payload, "batch"), plugin_id, config, info)


def track(properties: dict[str, Any] | None = None, **fields: Any):  # type: ignore[no-untyped-def]
    call = {"event": "Signed Up", "userId": "u-1", "properties": properties or {}, **fields}
    return single(call, "track", CONFIG, "plug", INFO)


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(user.encode()).decode()


def test_write_key_from_basic_auth_user_name() -> None:
    assert write_key_from(basic("wk_live_123:"), {}) == "wk_live_123"


def test_write_key_from_the_body() -> None:
    assert write_key_from(None, {"writeKey": "wk_live_123"}) == "wk_live_123"


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!notbase64", "Basic "])
def test_bad_authorization_is_unauthorized(header: str) -> None:
    with pytest.raises(Unauthorized):
        write_key_from(header, {})


def test_no_write_key_is_unauthorized() -> None:
    with pytest.raises(Unauthorized):
        write_key_from(None, {"writeKey": 42})


def test_user_id_or_anonymous_id_is_required() -> None:
    with pytest.raises(ValidationFailed) as exc:
        single({"event": "x"}, "track", CONFIG, "plug", INFO)
    assert "userId or anonymousId" in exc.value.details[0]["message"]
    assert track(userId=None, anonymousId="anon-1").user_id == "anon-1"


def test_the_stored_key_is_the_event_and_its_value_the_configured_property() -> None:
    event = single(
        {"event": "Rated", "userId": "u", "properties": {"stars": 4, "value": 1}}, "track", CONFIG, "p", INFO
    )
    assert (event.key, event.value) == ("Rated", Decimal(4))
    assert track({"value": "gold"}).value == "gold"


def test_message_id_makes_the_call_idempotent() -> None:
    assert track(messageId="ajs-1").event_id == track(messageId="ajs-1").event_id == "m:ajs-1"


def test_without_message_id_the_same_call_gets_the_same_id_and_another_call_another() -> None:
    first = track({"plan": "pro"}, timestamp="2025-11-24T20:39:00Z")
    assert first.event_id.startswith("h:")
    assert track({"plan": "pro"}, timestamp="2025-11-24T20:39:00Z").event_id == first.event_id
    assert track({"plan": "pro"}, timestamp="2025-11-24T20:39:01Z").event_id != first.event_id


def test_timestamp_is_corrected_for_device_clock_skew() -> None:
    # The device clock is 1 h fast: it says the event happened at 21:39:58 and was sent at 21:39:59.
    call = SegmentCall.model_validate(
        {
            "event": "e",
            "userId": "u",
            "originalTimestamp": "2025-11-24T21:39:58Z",
            "sentAt": "2025-11-24T21:39:59Z",
        }
    )
    assert event_time(call, None, RECEIVED) == RECEIVED - 1000


def test_without_sent_at_the_given_timestamp_is_used_and_without_any_the_server_time() -> None:
    with_ts = SegmentCall.model_validate({"event": "e", "userId": "u", "timestamp": "2025-01-01T00:00:00Z"})
    assert event_time(with_ts, None, RECEIVED) == 1_735_689_600_000
    bare = SegmentCall.model_validate({"event": "e", "userId": "u"})
    assert event_time(bare, None, RECEIVED) == RECEIVED


def test_batch_sent_at_applies_to_its_calls() -> None:
    payload = {
        "batch": [
            {"type": "track", "event": "e", "userId": "u", "originalTimestamp": "2025-11-24T20:00:00Z"}
        ],
        "sentAt": "2025-11-24T20:00:10Z",
    }
    (event,) = batch(payload, CONFIG, "plug", INFO)
    assert event.event_time == RECEIVED - 10_000


def test_order_completed_products_become_items_and_a_total_in_eur() -> None:
    event = track(
        {
            "order_id": "o-1",
            "currency": "USD",
            "revenue": 999,
            "products": [{"product_id": "p1", "price": 49.99, "quantity": 2}, {"sku": "s2", "price": "10"}],
        },
        event="Order Completed",
    )
    assert event.commerce == "purchase"
    assert [(i.item_id, i.value, i.quantity, i.currency) for i in event.items] == [
        ("p1", Decimal("49.99"), 2, "USD"),
        ("s2", Decimal(10), 1, "USD"),
    ]
    assert event.total_value_base == Decimal("101.18")  # (99.98 + 10) x 0.92
    assert (event.order_id, event.counts_once_per_order) == ("o-1", True)


def test_an_order_without_priced_products_uses_its_revenue() -> None:
    event = track(
        {"order_id": "o-2", "revenue": 25, "total": 27.5, "currency": "GBP"}, event="Order Completed"
    )
    assert event.total_value_base == Decimal("29.25")


def test_product_added_is_one_item_in_the_widgets_terms() -> None:
    event = track(
        {"product_id": "shoe", "price": 139.99, "quantity": 1, "currency": "EUR"}, event="Product Added"
    )
    assert event.commerce == "add_to_cart"
    assert [(i.item_id, i.value) for i in event.items] == [("shoe", Decimal("139.99"))]
    assert event.total_value_base == Decimal("139.99")
    assert event.order_id is None


def test_ecommerce_event_with_unknown_currency_has_a_null_total() -> None:
    event = track({"products": [{"product_id": "p", "price": 5}], "currency": "ZZZ"}, event="Order Completed")
    assert event.total_value_base is None


def test_identify_and_page_calls_are_stored_with_their_kind() -> None:
    identify = single({"userId": "u", "traits": {"plan": "pro"}}, "identify", CONFIG, "p", INFO)
    assert (identify.kind, identify.key, identify.properties) == ("identify", "identify", {"plan": "pro"})
    (page,) = batch({"batch": [{"type": "page", "name": "Home", "anonymousId": "a"}]}, CONFIG, "p", INFO)
    assert (page.kind, page.key) == ("page", "page")


def test_a_call_over_32_kb_in_a_batch_is_too_large() -> None:
    big = {"type": "track", "event": "e", "userId": "u", "properties": {"blob": "x" * 33_000}}
    with pytest.raises(PayloadTooLarge):
        batch({"batch": [big]}, CONFIG, "p", INFO)


def test_a_batch_names_every_bad_call() -> None:
    payload = {
        "batch": [
            {"type": "track", "userId": "u"},
            {"type": "shout", "userId": "u"},
            {"type": "track", "event": "ok", "userId": "u"},
        ]
    }
    with pytest.raises(ValidationFailed) as exc:
        batch(payload, CONFIG, "p", INFO)
    assert [d["field"] for d in exc.value.details] == ["batch[0]", "batch[1].type"]
