"""Each call is judged on its own, and nothing one request stores outgrows it: an unstorable number
(sent as a number or as text) refuses only its call and is recorded for the plugin; an empty id is
no id; a call counts the batch context it inherits toward its 32 KB, and a batch stores at most a
small multiple of its own size; context traits are stored once."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.helpers import api_event
from tests.integration.conftest import Invoke, body, scan, stored_events, stored_rejections
from tracking.ingest.dialects.segment import CALL_MAX_BYTES, STORED_MAX_MULTIPLE
from tracking.storage.dynamo import item_size

WRITE_KEY = "wk_live_123"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
DIGITS_39 = "1.23456789012345678901234567890123456789"


def raw_post(ingest: Invoke, path: str, text: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return ingest(api_event("POST", path, raw=text.encode(), headers=BASIC if headers is None else headers))


def refused_calls(aws: Any) -> list[dict[str, Any]]:
    """Every refused call recorded so far: (code, fields named) per call."""
    found = []
    for record in stored_rejections(aws):
        for entry in json.loads(record.get("entries") or "[]"):
            fields = sorted(detail.get("field", "") for detail in entry["details"])
            found.append({"code": entry["code"], "fields": fields, "index": entry["index"]})
    return found


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b"])
def test_one_unstorable_number_refuses_only_its_call_and_is_recorded(
    ingest: Invoke, aws: Any, demo_config: Any, path: str
) -> None:
    # Given a batch as the libraries send it: an identify, a valid track, a track with 1e+200
    text = (
        '{"batch": ['
        '{"type": "identify", "userId": "u-1", "traits": {"plan": "pro"}, "messageId": "m-1"},'
        '{"type": "track", "event": "Signed Up", "userId": "u-1", "messageId": "m-2"},'
        '{"type": "track", "event": "Paid", "userId": "u-1", "messageId": "m-3", '
        '"properties": {"amount": 1e+200}}]}'
    )
    # When it is posted
    answer = raw_post(ingest, path, text)
    # Then the two valid calls are stored and the third is listed, naming its field
    assert answer["statusCode"] == 200, answer["body"]
    reply = body(answer)
    assert reply["accepted"] == 2
    ((rejected,),) = [reply["rejected"]]
    assert (rejected["index"], rejected["messageId"], rejected["code"]) == (2, "m-3", "VALIDATION")
    assert [d["field"] for d in rejected["details"]] == ["properties.amount"]
    assert sorted(e["message_id"] for e in stored_events(aws)) == ["m-1", "m-2"]
    # And the refusal is recorded for the plugin
    assert refused_calls(aws) == [{"code": "VALIDATION", "fields": ["properties.amount"], "index": 2}]


@pytest.mark.parametrize("path", ["/v1/t", "/v1/track"])
def test_a_single_call_with_an_unstorable_number_is_422_and_recorded(
    ingest: Invoke, aws: Any, demo_config: Any, path: str
) -> None:
    text = '{"event": "Paid", "userId": "u-1", "properties": {"amount": 1e+200}}'
    answer = raw_post(ingest, path, text)
    assert answer["statusCode"] == 422
    assert body(answer)["code"] == "VALIDATION"
    assert [d["field"] for d in body(answer)["error"]["details"]] == ["properties.amount"]
    assert stored_events(aws) == []
    assert refused_calls(aws) == [{"code": "VALIDATION", "fields": ["properties.amount"], "index": None}]


def test_a_plugin_call_with_an_unstorable_number_is_422_and_recorded(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    text = '{"key": "handouts", "value": "a.pdf", "user_id": "p-1", "extra": {"n": -1e-200}}'
    answer = raw_post(ingest, "/v1/plugins/demo-plugin/track", text, {})
    assert answer["statusCode"] == 422
    assert stored_events(aws) == []
    assert refused_calls(aws) == [{"code": "VALIDATION", "fields": ["extra.n"], "index": None}]


@pytest.mark.parametrize("price", [DIGITS_39, "1e200", "-1E-131"])
def test_a_widget_price_sent_as_text_follows_the_number_rule(ingest: Invoke, aws: Any, price: str) -> None:
    # Given a widget purchase whose price is a numeric string no table can hold exactly
    payload = {
        "event": "purchase",
        "token": "user_abc123def456",
        "data": {"chatbot_id": "shop-bot", "items": [{"item_id": "sku", "price": price, "currency": "EUR"}]},
    }
    # When it is tracked
    answer = ingest(api_event("POST", "/api/analytics/track", payload))
    # Then it is a 422 naming the field (never a 500), nothing is stored, and the refusal is recorded
    assert answer["statusCode"] == 422, answer["body"]
    assert [d["field"] for d in body(answer)["error"]["details"]] == ["data.items[0].price"]
    assert stored_events(aws) == []
    assert [call["fields"] for call in refused_calls(aws)] == [["data.items[0].price"]]


def test_segment_prices_and_revenue_sent_as_text_follow_the_number_rule(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    # Given an order whose product price and one whose revenue no table can hold, beside a good one
    calls = [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u-1",
            "messageId": "bad-price",
            "properties": {"order_id": "o-1", "products": [{"product_id": "p", "price": DIGITS_39}]},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u-1",
            "messageId": "bad-revenue",
            "properties": {"order_id": "o-2", "revenue": "9e126", "currency": "EUR"},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u-1",
            "messageId": "good",
            "properties": {"order_id": "o-3", "revenue": "12.50", "currency": "EUR"},
        },
    ]
    answer = ingest(api_event("POST", "/v1/batch", {"batch": calls}, headers=BASIC))
    # Then only the good order is stored; each bad one is listed with the field it holds
    assert answer["statusCode"] == 200, answer["body"]
    reply = body(answer)
    assert reply["accepted"] == 1
    assert [(r["index"], [d["field"] for d in r["details"]]) for r in reply["rejected"]] == [
        (0, ["properties.products[0].price"]),
        (1, ["properties.revenue"]),
    ]
    ((stored,),) = [stored_events(aws)]
    assert (stored["order_id"], str(stored["total_value_base"])) == ("o-3", "12.50")
    # And a single call with such a price is a 422
    single = ingest(api_event("POST", "/v1/track", {**calls[1], "type": None}, headers=BASIC))
    assert single["statusCode"] == 422
    assert [d["field"] for d in body(single)["error"]["details"]] == ["properties.revenue"]


def test_an_empty_user_id_is_no_user_id(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    # Given RudderStack's browser SDK before identify: "userId": "" beside the anonymous id
    call = {"type": "track", "event": "Signed Up", "userId": "", "anonymousId": "anon-7", "messageId": "r-1"}
    # When it is sent alone and in a batch
    assert ingest(api_event("POST", "/v1/track", call, headers=BASIC))["statusCode"] == 200
    batch = {"batch": [{**call, "messageId": "r-2"}]}
    assert body(ingest(api_event("POST", "/v1/batch", batch, headers=BASIC)))["accepted"] == 1
    # Then both are stored for the anonymous id
    assert sorted((e["user_id"], e["anonymous_id"]) for e in stored_events(aws)) == [("anon-7", "anon-7")] * 2
    # And an empty id with nothing else is still refused
    alone = {"type": "track", "event": "Signed Up", "userId": "", "anonymousId": ""}
    answer = ingest(api_event("POST", "/v1/track", alone, headers=BASIC))
    assert answer["statusCode"] == 422


def test_a_call_counts_the_context_it_inherits_toward_its_32_kb(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    # Given a batch context of 20 KB, a small call, and a 14 KB call that would hold 34 KB with it
    context = {"blob": "c" * 20_000}
    small = {"type": "track", "event": "Signed Up", "userId": "u-1", "messageId": "small"}
    large = {**small, "messageId": "large", "properties": {"note": "p" * 14_000}}
    own = {**large, "messageId": "own", "context": {"blob": "own"}}  # overrides what it would inherit
    answer = ingest(
        api_event("POST", "/v1/batch", {"batch": [small, large, own], "context": context}, headers=BASIC)
    )
    reply = body(answer)
    # Then the large call is refused as too large, the others are stored
    assert [(r["index"], r["code"]) for r in reply["rejected"]] == [(1, "ANALYTICS_002")]
    assert sorted(e["message_id"] for e in stored_events(aws)) == ["own", "small"]
    for item in scan(aws, "EventsTable"):
        assert item_size(item) < CALL_MAX_BYTES + 2_000  # the call, its context, what the service adds


def test_a_batch_stores_at_most_a_small_multiple_of_its_size(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    # Given a 430 KB batch: a 25 KB context that every one of its 2,000 small calls would inherit
    calls = [
        {"type": "track", "event": "Signed Up", "userId": f"u-{n}", "messageId": f"m-{n}"}
        for n in range(2_000)
    ]
    payload = {"batch": calls, "context": {"library": {"name": "attacker"}, "blob": "c" * 25_000}}
    text = json.dumps(payload, separators=(",", ":"))
    assert 100_000 < len(text) < 500 * 1024
    # When it is posted
    answer = raw_post(ingest, "/v1/batch", text)
    # Then it is answered (never a 500): the calls up to the budget are stored, the rest refused
    assert answer["statusCode"] == 200, answer["body"][:500]
    reply = body(answer)
    assert reply["accepted"] > 0
    assert {r["code"] for r in reply["rejected"]} == {"ANALYTICS_002"}
    assert reply["accepted"] + len(reply["rejected"]) == 2_000
    stored = sum(item_size(item) for item in scan(aws, "EventsTable"))
    assert stored <= STORED_MAX_MULTIPLE * len(text) * 1.05
    assert stored >= (STORED_MAX_MULTIPLE - 1) * len(text)  # the budget is used, not wasted


def test_context_traits_are_stored_once_and_read_back_whole(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    # Given an identify whose traits sit in context.traits (RudderStack's libraries) and its own
    traits = {"email": "a@example.com", "bio": "b" * 5_000}
    call = {
        "type": "identify",
        "userId": "u-1",
        "messageId": "i-1",
        "traits": {"plan": "pro", "email": "a@example.com"},
        "context": {"traits": traits},
    }
    assert ingest(api_event("POST", "/v1/identify", call, headers=BASIC))["statusCode"] == 200
    # Then the stored item holds the 5 KB trait once
    (item,) = [i for i in scan(aws, "EventsTable") if i["kind"]["S"] == "identify"]  # (beside its claim)
    assert item_size(item) < 6_500
    # And the event reads back with every trait
    ((event,),) = [stored_events(aws)]
    assert event["traits"] == {**traits, "plan": "pro"}
