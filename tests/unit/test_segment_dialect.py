"""Segment-spec dialect: auth, limits, idempotency, clock skew and ecommerce normalization."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest

from tracking.api_errors import PayloadTooLarge, Unauthorized, ValidationFailed
from tracking.ingest.dialects.segment import (
    Route,
    SegmentCall,
    event_time,
    parse,
    to_canonical,
)
from tracking.ingest.dialects.write_keys import is_write_key, write_key_from
from tracking.keys import SEP
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
    (event,), _ = to_canonical(parse(raw, route), plugin_id, config, info)
    return event


def batch(
    payload: dict[str, Any], config: PluginConfig, plugin_id: str, info: RequestInfo
) -> list[CanonicalEvent]:
    """A ``/v1/batch`` payload, parsed and normalized."""
    events, _ = to_canonical(parse(payload, "batch"), plugin_id, config, info)
    return events


def track(properties: dict[str, Any] | None = None, **fields: Any):  # type: ignore[no-untyped-def]
    call = {"event": "Signed Up", "userId": "u-1", "properties": properties or {}, **fields}
    return single(call, "track", CONFIG, "plug", INFO)


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(user.encode()).decode()


def test_write_key_from_basic_auth_user_name() -> None:
    assert write_key_from(basic("wk_live_123:"), {}) == "wk_live_123"


def test_write_key_from_the_body() -> None:
    assert write_key_from(None, {"writeKey": "wk_live_123"}) == "wk_live_123"


def test_a_bearer_write_key_is_read_as_customer_ios_libraries_send_region_keys() -> None:
    assert write_key_from("Bearer sk_us_0123456789", {}) == "sk_us_0123456789"
    assert not is_write_key("abc")  # a bearer that is no write key is unknown (401) at the route


@pytest.mark.parametrize("header", ["Bearer ", "Token abc", "Basic !!!notbase64", "Basic "])
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


def call_of(**fields: Any) -> SegmentCall:
    return SegmentCall.model_validate({"type": "track", "event": "e", "userId": "u", **fields})


def test_original_timestamp_is_corrected_for_device_clock_skew() -> None:
    # The device clock is 1 h fast: it says the event happened at 21:39:58 and was sent at 21:39:59.
    call = call_of(originalTimestamp="2025-11-24T21:39:58Z", sentAt="2025-11-24T21:39:59Z")
    assert event_time(call, None, RECEIVED) == (RECEIVED - 1000, None)


def test_an_explicit_timestamp_is_kept_as_given_even_with_sent_at() -> None:
    # A historical import: its timestamp is when it happened, whatever the clocks said at sending.
    call = call_of(timestamp="2025-01-01T00:00:00Z", sentAt="2025-11-24T21:39:59Z")
    assert event_time(call, None, RECEIVED) == (1_735_689_600_000, None)
    skewed = call_of(
        timestamp="2025-01-01T00:00:00Z",
        originalTimestamp="2025-11-24T21:39:58Z",
        sentAt="2025-11-24T21:39:59Z",
    )
    assert event_time(skewed, None, RECEIVED) == (1_735_689_600_000, None)


def test_without_a_usable_pair_the_time_is_the_server_time() -> None:
    assert event_time(call_of(), None, RECEIVED) == (RECEIVED, None)
    # originalTimestamp alone says nothing about the device's skew
    assert event_time(call_of(originalTimestamp="2025-11-24T21:39:58Z"), None, RECEIVED) == (RECEIVED, None)


@pytest.mark.parametrize(
    ("fields", "adjusted"),
    [
        ({"timestamp": "2025-11-24T22:40:01Z"}, "future"),  # over an hour past receipt
        ({"timestamp": "1999-12-31T23:59:59Z"}, "past"),
        ({"timestamp": "0001-01-01T00:00:00Z"}, "past"),
        ({"timestamp": "not a time"}, "past"),  # not representable
        ({"timestamp": 1e300}, "past"),
        ({"sentAt": "9999-12-31T23:59:59Z", "originalTimestamp": "0001-01-01T00:00:00Z"}, "past"),
        ({"sentAt": "0001-01-01T00:00:00Z", "originalTimestamp": "9999-12-31T23:59:59Z"}, "future"),
    ],
)
def test_times_out_of_bounds_become_the_receipt_time_and_say_so(
    fields: dict[str, Any], adjusted: str
) -> None:
    assert event_time(call_of(**fields), None, RECEIVED) == (RECEIVED, adjusted)
    event = track(**fields)
    assert (event.event_time, event.time_adjusted) == (RECEIVED, adjusted)
    assert event.client_times == fields  # the client's own, kept


def test_an_hour_ahead_is_still_believed() -> None:
    assert event_time(call_of(timestamp="2025-11-24T21:40:00Z"), None, RECEIVED) == (
        RECEIVED + 3_600_000,
        None,
    )


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
    assert event.total_value_base == Decimal("919.08")  # its revenue first: 999 USD x 0.92
    assert (event.order_id, event.counts_once_per_order) == ("o-1", True)


@pytest.mark.parametrize(
    ("properties", "total"),
    [
        ({"total": 20, "products": [{"price": 5}]}, Decimal("18.40")),  # total, else
        ({"products": [{"price": 49.99, "quantity": 2}, {"price": "10"}]}, Decimal("101.18")),  # products
        ({"value": 3}, Decimal("2.76")),  # value, last
        ({"products": [{"product_id": "unpriced"}]}, None),
    ],
)
def test_an_orders_value_is_its_revenue_else_total_else_its_products(
    properties: dict[str, Any], total: Decimal | None
) -> None:
    for name in ("Order Completed", "Order Refunded"):
        event = track({"currency": "USD", **properties}, event=name)
        assert event.total_value_base == total


@pytest.mark.parametrize(
    ("properties", "group"),
    [
        ({"experiment_id": "e1", "variation_id": "control"}, "control"),
        ({"experiment_id": "e1", "variation_id": 0}, "control"),
        ({"experiment_id": "e1", "variation_name": "A"}, "control"),
        ({"experiment_id": "e1", "variation_id": "v2", "variation_name": "Control"}, "control"),
        ({"experiment_id": "e1", "variation_name": "Variant B"}, "test"),
        ({"experiment_id": "e1", "variation_id": 1}, "test"),
        ({"experiment_id": "e1"}, None),  # no variation
        ({"variation_id": "control"}, None),  # no experiment
        ({"experiment_id": "e1", "variation_id": True}, None),
    ],
)
def test_experiment_viewed_puts_its_user_in_an_ab_group(
    properties: dict[str, Any], group: str | None
) -> None:
    assert track(properties, event="Experiment Viewed").ab_group == group
    assert track(properties, event="Experiment Started").ab_group is None


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
    assert (identify.kind, identify.key, identify.traits) == ("identify", "identify", {"plan": "pro"})
    (page,) = batch({"batch": [{"type": "page", "name": "Home", "anonymousId": "a"}]}, CONFIG, "p", INFO)
    assert (page.kind, page.key, page.value, page.name) == ("page", "page", "Home", "Home")


def test_every_identity_field_is_kept() -> None:
    calls = [
        {
            "type": "identify",
            "userId": "u",
            "anonymousId": "a",
            "traits": {"plan": "pro"},
            "context": {"traits": {"x": 1}},
        },
        {"type": "alias", "previousId": "a", "userId": "u"},
        {"type": "group", "userId": "u", "groupId": "g-1", "traits": {"name": "Acme"}},
        {"type": "screen", "userId": "u", "name": "Home", "category": "App", "properties": {"p": 1}},
        {"type": "track", "userId": "u", "anonymousId": "a", "event": "e", "integrations": {"All": False}},
    ]
    identify, alias, group, screen, track_ = batch({"batch": calls}, CONFIG, "p", INFO)
    # context.traits count as traits (RudderStack's libraries send identify traits only there)
    assert (identify.user_id, identify.anonymous_id, identify.traits) == ("u", "a", {"x": 1, "plan": "pro"})
    assert identify.context["traits"] == {"x": 1}
    assert (alias.kind, alias.previous_id, alias.user_id) == ("alias", "a", "u")
    assert (group.group_id, group.traits) == ("g-1", {"name": "Acme"})
    assert (screen.key, screen.value, screen.name, screen.category, screen.properties) == (
        "screen",
        "Home",
        "Home",
        "App",
        {"p": 1},
    )
    assert (track_.anonymous_id, track_.integrations) == ("a", {"All": False})


def test_a_call_without_message_id_gets_one() -> None:
    event = track()
    assert event.event_id.startswith("g:")
    assert event.message_id == event.event_id


def test_a_call_over_32_kb_in_a_batch_is_refused_alone() -> None:
    big = {"type": "track", "event": "e", "userId": "u", "properties": {"blob": "x" * 33_000}}
    ok = {"type": "track", "event": "ok", "userId": "u"}
    request = parse({"batch": [big, ok]}, "batch")
    assert [c.call.event for c in request.calls] == ["ok"]
    ((refused),) = request.rejected
    assert (refused.index, refused.code) == (0, "ANALYTICS_002")
    assert len(refused.payload.encode()) <= 2048


def test_a_batch_is_judged_call_by_call() -> None:
    payload = {
        "batch": [
            {"type": "track", "userId": "u", "messageId": "m-0"},
            {"type": "shout", "userId": "u"},
            {"type": "track", "event": "ok", "userId": "u"},
            "not a call",
        ]
    }
    request = parse(payload, "batch")
    assert [c.index for c in request.calls] == [2]
    assert [(r.index, r.message_id, r.code) for r in request.rejected] == [
        (0, "m-0", "VALIDATION"),
        (1, None, "VALIDATION"),
        (3, None, "VALIDATION"),
    ]
    assert request.rejected[1].details == (
        {"field": "type", "message": "must be one of track, identify, page, screen, group, alias"},
    )
    assert "event is required" in request.rejected[0].details[0]["message"]


def test_a_batch_holds_at_most_2500_calls() -> None:
    calls = [{"type": "track", "event": "e", "userId": "u"}] * 2_501
    with pytest.raises(PayloadTooLarge):
        parse({"batch": calls}, "batch")
    assert len(parse({"batch": calls[:2_500]}, "batch").calls) == 2_500


def test_alias_needs_both_ids_and_group_its_group() -> None:
    request = parse({"batch": [{"type": "alias", "userId": "u"}, {"type": "group", "userId": "u"}]}, "batch")
    assert [r.details[0]["message"] for r in request.rejected] == [
        "Value error, previousId and userId are required for an alias call".removeprefix("Value error, "),
        "Value error, groupId is required for a group call".removeprefix("Value error, "),
    ]


def test_an_order_counts_once_per_order_whatever_its_message_id() -> None:
    order = {"order_id": "o-9", "revenue": 10}
    assert track(order, event="Order Completed", messageId="a").event_id == "o:o-9"
    assert track(order, event="Order Completed", messageId="b").event_id == "o:o-9"


def test_ids_and_event_names_are_not_read_as_numbers_or_control_characters() -> None:
    for bad in ({"userId": 12345}, {"event": f"a{SEP}b"}, {"anonymousId": ["x"]}):
        with pytest.raises(ValidationFailed):
            track(**bad)
