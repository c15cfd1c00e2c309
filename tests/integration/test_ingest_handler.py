"""The ingest function on moto, through API Gateway REST proxy events: every rule of the contract's
ingest sections as a client meets it."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from tests.conftest import SAMPLE_ADMIN_KEY, sample_event
from tests.helpers import api_event
from tests.integration.conftest import Invoke, aggregate_stored_events, body, new_container, stored_events
from tests.integration.faults import dynamodb_fails
from tracking.keys import client_id_pk, event_pk
from tracking.storage.dynamo import client

WRITE_KEY_AUTH = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}
ORIGIN = {"Origin": "https://app.example.com"}


def widget(event: str = "visitor", token: str = "user_abc123def456", **data: Any) -> dict[str, Any]:
    return {"event": event, "token": token, "data": {"chatbot_id": "bot-1", **data}}


def post(invoke: Invoke, path: str, payload: Any, **kwargs: Any) -> dict[str, Any]:
    return invoke(api_event("POST", path, payload, **kwargs))


def error_code(answer: dict[str, Any]) -> str:
    code: str = body(answer)["error"]["code"]
    return code


# -- widget dialect -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/analytics/track", "/api/events/track", "/api/save"])
def test_widget_post_routes_store_one_canonical_event(ingest: Invoke, aws: Any, path: str) -> None:
    answer = post(ingest, path, widget("bot_open"))
    assert (answer["statusCode"], body(answer)) == (200, {"success": True})
    (event,) = stored_events(aws)
    assert (event["plugin_id"], event["user_id"], event["key"], event["dialect"]) == (
        "bot-1",
        "user_abc123def456",
        "bot_open",
        "widget",
    )


@pytest.mark.parametrize("path", ["/api/analytics/track", "/api/events/track"])
def test_legacy_get_routes(ingest: Invoke, aws: Any, path: str) -> None:
    query = {
        "e": "tracktrans",
        "u": "user_abc123def456",
        "d": json.dumps({"chatbot_id": "bot-1", "orderNum": "A1"}),
    }
    answer = ingest(api_event("GET", path, query=query))
    assert answer["statusCode"] == 200
    (event,) = stored_events(aws)
    assert (event["key"], event["order_id"]) == ("purchase", "A1")


def test_legacy_get_with_d_not_json_is_analytics_001(ingest: Invoke) -> None:
    answer = ingest(
        api_event("GET", "/api/analytics/track", query={"e": "visitor", "u": "user_abc123def456", "d": "{"})
    )
    assert (answer["statusCode"], error_code(answer)) == (400, "ANALYTICS_001")


def test_a_purchase_is_stored_with_items_group_and_total_in_eur(ingest: Invoke, aws: Any) -> None:
    answer = ingest(sample_event("widget-track"))
    assert answer["statusCode"] == 200
    (event,) = stored_events(aws)
    assert event["total_value_base"] == Decimal("91.98")
    assert event["ab_group"] == "control"
    assert event["items"][0]["item_id"] == "SKU-123"
    assert (event["items"][0]["quantity"], event["items"][0]["currency"]) == (2, "USD")
    # In its user's partition, its order claimed within the chatbot: the same order counts once, whoever
    # reports it.
    raw = {(i["pk"]["S"], i["sk"]["S"]): i for i in aws.scan(TableName="EventsTable")["Items"]}
    assert set(raw) == {
        (event_pk("demo-bot", "user_abc123def450"), "o:ORD-2024-001"),
        (client_id_pk("demo-bot", "o:ORD-2024-001"), "o:ORD-2024-001"),
    }


def test_unknown_currency_is_stored_as_a_null_total(ingest: Invoke, aws: Any) -> None:
    items = [{"item_id": "x", "value": 3, "currency": "XYZ"}]
    assert post(ingest, "/api/analytics/track", widget("purchase", items=items))["statusCode"] == 200
    raw = aws.scan(TableName="EventsTable")["Items"][0]
    assert raw["total_value_base"] == {"NULL": True}


def test_a_repeated_order_number_is_answered_200_and_stored_once(ingest: Invoke, aws: Any) -> None:
    first = post(ingest, "/api/analytics/track", widget("purchase", orderNum="ORD-1", items=[{"value": 5}]))
    again = post(ingest, "/api/analytics/track", widget("purchase", orderNum="ORD-1", items=[{"value": 5}]))
    # The same order reported from another visitor's browser is still the same purchase.
    other = post(ingest, "/api/save", widget("tracktrans", token="someone_else_99", orderNum="ORD-1"))
    assert [a["statusCode"] for a in (first, again, other)] == [200, 200, 200]
    assert [e["order_id"] for e in stored_events(aws)] == ["ORD-1"]
    # Another chatbot's ORD-1 is another order.
    post(
        ingest,
        "/api/analytics/track",
        {**widget("purchase", orderNum="ORD-1"), "data": {"chatbot_id": "bot-2", "orderNum": "ORD-1"}},
    )
    assert len(stored_events(aws)) == 2


def test_validation_errors_are_422_with_every_bad_field(ingest: Invoke, aws: Any) -> None:
    answer = post(
        ingest,
        "/api/analytics/track",
        {"event": "purchase", "token": "short", "data": {"items": [{"value": 1}, {"currency": "EURO"}]}},
    )
    assert answer["statusCode"] == 422
    assert body(answer)["error"]["code"] == "VALIDATION"
    assert [d["field"] for d in body(answer)["error"]["details"]] == ["token", "data.items[1].currency"]
    assert stored_events(aws) == []


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1,2]", b'{"event":"visitor","token":"user_abc123def456","data":"x"}']
)
def test_malformed_payloads_are_analytics_001(ingest: Invoke, aws: Any, raw: bytes) -> None:
    answer = ingest(api_event("POST", "/api/analytics/track", raw=raw))
    assert (answer["statusCode"], error_code(answer)) == (400, "ANALYTICS_001")
    assert stored_events(aws) == []


def test_a_50001_byte_body_is_analytics_002(ingest: Invoke, aws: Any) -> None:
    payload = widget(note="")
    size = len(json.dumps(payload).encode())
    payload["data"]["note"] = "n" * (50_001 - size)
    raw = json.dumps(payload).encode()
    assert len(raw) == 50_001
    answer = ingest(api_event("POST", "/api/analytics/track", raw=raw))
    assert (answer["statusCode"], error_code(answer)) == (400, "ANALYTICS_002")
    payload["data"]["note"] = payload["data"]["note"][1:]
    assert post(ingest, "/api/analytics/track", payload)["statusCode"] == 200


# -- guards -------------------------------------------------------------------------------------------


def test_the_121st_call_from_one_ip_within_a_minute_is_429(ingest: Invoke, aws: Any) -> None:
    for _ in range(120):
        assert post(ingest, "/api/analytics/track", widget(), ip="192.0.2.10")["statusCode"] == 200
    limited = post(ingest, "/api/analytics/track", widget(), ip="192.0.2.10")
    assert (limited["statusCode"], error_code(limited)) == (429, "RATE_LIMITED")
    assert 1 <= int(limited["multiValueHeaders"]["Retry-After"][0]) <= 60
    assert post(ingest, "/api/analytics/track", widget(), ip="192.0.2.11")["statusCode"] == 200
    assert len(stored_events(aws)) == 121


def test_the_limit_is_shared_by_all_containers(aws: Any) -> None:
    first, second = new_container("IngestFunction"), new_container("IngestFunction")
    codes = [
        post(c, "/api/analytics/track", widget(), ip="192.0.2.20")["statusCode"] for c in [first, second] * 70
    ]
    assert codes.count(200) <= 120
    assert codes[-1] == 429


def test_rate_limit_zero_disables_it(function_env: Callable[..., None], aws: Any) -> None:
    function_env(RATE_LIMIT_PER_MINUTE="0")
    invoke = new_container("IngestFunction")
    codes = {
        post(invoke, "/api/analytics/track", widget(), ip="192.0.2.30")["statusCode"] for _ in range(130)
    }
    assert codes == {200}


def test_origin_not_allowed_by_the_plugin_is_403_and_nothing_is_stored(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    payload = {"key": "emoji-reactions", "value": "😍", "user_id": "p1"}
    denied = post(
        ingest, "/v1/plugins/demo-plugin/track", payload, headers={"Origin": "https://evil.example"}
    )
    assert (denied["statusCode"], error_code(denied)) == (403, "FORBIDDEN")
    assert stored_events(aws) == []
    assert post(ingest, "/v1/plugins/demo-plugin/track", payload, headers=ORIGIN)["statusCode"] == 200
    # Servers send no Origin: nothing to check.
    assert post(ingest, "/v1/plugins/demo-plugin/track", payload)["statusCode"] == 200


def test_widget_origin_is_checked_against_the_chatbots_config(
    ingest: Invoke, query: Invoke, aws: Any
) -> None:
    config = {"allowed_origins": ["https://shop.example"]}
    event = api_event("PUT", "/v1/plugins/bot-1/config", config, headers={"x-api-key": SAMPLE_ADMIN_KEY})
    assert query(event)["statusCode"] == 200
    denied = post(ingest, "/api/analytics/track", widget(), headers={"Origin": "https://other.example"})
    assert denied["statusCode"] == 403
    allowed = post(ingest, "/api/analytics/track", widget(), headers={"Origin": "https://shop.example"})
    assert allowed["statusCode"] == 200
    assert allowed["multiValueHeaders"]["Access-Control-Allow-Origin"] == ["*"]


def test_preflight_is_answered_for_allowed_origins_only(ingest: Invoke, demo_config: Any) -> None:
    headers = {"Access-Control-Request-Method": "POST"}
    allowed = ingest(api_event("OPTIONS", "/v1/plugins/demo-plugin/track", headers={**headers, **ORIGIN}))
    assert allowed["statusCode"] == 204
    assert "POST" in allowed["multiValueHeaders"]["Access-Control-Allow-Methods"][0]
    denied = ingest(
        api_event(
            "OPTIONS", "/v1/plugins/demo-plugin/track", headers={**headers, "Origin": "https://x.example"}
        )
    )
    assert denied["statusCode"] == 403


def test_storage_throttling_is_503_and_nothing_is_stored(ingest: Invoke, aws: Any) -> None:
    with dynamodb_fails("PutItem"):
        answer = post(ingest, "/api/analytics/track", widget())
    assert (answer["statusCode"], error_code(answer)) == (503, "UNAVAILABLE")
    assert stored_events(aws) == []


def test_a_throttled_purchase_leaves_nothing_behind(ingest: Invoke, aws: Any) -> None:
    purchase = widget("purchase", orderNum="ORD-7")
    with dynamodb_fails("PutItem"):
        assert post(ingest, "/api/analytics/track", purchase)["statusCode"] == 503
    assert post(ingest, "/api/analytics/track", purchase)["statusCode"] == 200
    assert [e["order_id"] for e in stored_events(aws)] == ["ORD-7"]


def test_storage_unreachable_is_503(ingest: Invoke, aws: Any) -> None:
    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="http://dynamodb")

    client().meta.events.register("before-call.dynamodb.PutItem", unreachable)
    try:
        answer = post(ingest, "/api/analytics/track", widget())
    finally:
        client().meta.events.unregister("before-call.dynamodb.PutItem", unreachable)
    assert answer["statusCode"] == 503


# -- plugin dialect -----------------------------------------------------------------------------------


def test_plugin_track_single_and_batch(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    one = post(
        ingest, "/v1/plugins/demo-plugin/track", {"key": "emoji-reactions", "value": "😍", "user_id": "p1"}
    )
    batch = post(
        ingest,
        "/v1/plugins/demo-plugin/track",
        {
            "user_id": "p2",
            "events": [
                {"key": "rating", "value": 10},
                {"key": "rating", "value": 5},
                {"key": "name", "value": "John"},
            ],
        },
    )
    assert (one["statusCode"], batch["statusCode"]) == (200, 200)
    stored = sorted((e["user_id"], e["key"], e["value"]) for e in stored_events(aws))
    assert stored == [
        ("p1", "emoji-reactions", "😍"),
        ("p2", "name", "John"),
        ("p2", "rating", 5),
        ("p2", "rating", 10),
    ]


def test_plugin_key_not_declared_or_value_of_wrong_type_is_422(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    answer = post(
        ingest,
        "/v1/plugins/demo-plugin/track",
        {"user_id": "p", "events": [{"key": "rating", "value": "ten"}, {"key": "nope"}]},
    )
    assert answer["statusCode"] == 422
    assert [d["field"] for d in body(answer)["error"]["details"]] == ["events[0].value", "events[1].key"]
    assert stored_events(aws) == []


def test_plugin_without_published_config_is_422(ingest: Invoke) -> None:
    answer = post(ingest, "/v1/plugins/nobody/track", {"key": "k", "user_id": "u"})
    assert (answer["statusCode"], body(answer)["error"]["details"][0]["field"]) == (422, "plugin_id")


def test_a_throttled_plugin_batch_stores_none_of_its_events(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    payload = {"user_id": "p", "events": [{"key": "rating", "value": n} for n in range(20)]}
    with dynamodb_fails("TransactWriteItems"):
        assert post(ingest, "/v1/plugins/demo-plugin/track", payload)["statusCode"] == 503
    assert stored_events(aws) == []


def test_a_published_config_takes_effect_within_the_cache_time(
    function_env: Callable[..., None], aws: Any, demo_config: Any
) -> None:
    function_env(CONFIG_CACHE_SECONDS="0.2")
    invoke, admin = new_container("IngestFunction"), new_container("QueryFunction")
    payload = {"key": "clicks", "user_id": "u"}
    assert post(invoke, "/v1/plugins/demo-plugin/track", payload)["statusCode"] == 422
    config = {
        **demo_config,
        "tracking": {"events": [{"key": "clicks", "name": {"en": "Clicks"}, "aggregations": ["increment"]}]},
    }
    assert (
        admin(
            api_event(
                "PUT", "/v1/plugins/demo-plugin/config", config, headers={"x-api-key": SAMPLE_ADMIN_KEY}
            )
        )["statusCode"]
        == 200
    )
    time.sleep(0.25)
    assert post(invoke, "/v1/plugins/demo-plugin/track", payload)["statusCode"] == 200


# -- Segment-spec dialect -----------------------------------------------------------------------------


def test_segment_track_identify_and_batch(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    for name in ("segment-track", "segment-identify"):
        answer = ingest(sample_event(name))
        assert (answer["statusCode"], body(answer)) == (200, {"success": True}), name
    answer = ingest(sample_event("segment-batch"))
    assert (answer["statusCode"], body(answer)) == (200, {"success": True, "accepted": 3, "rejected": []})
    events = {e["event_id"]: e for e in stored_events(aws)}
    assert len(events) == 5
    # An order is keyed by its order id (it counts once, whatever its messageId).
    order = events["o:50314b8e9bcf000000000000"]
    assert order["message_id"] == "ajs-f8ca1e4de5024d9430b3928bd8ac6b96"
    assert (order["key"], order["commerce"], order["total_value_base"]) == (
        "Order Completed",
        "purchase",
        Decimal("23.00"),
    )
    assert events["m:ajs-identify-0001"]["kind"] == "identify"
    assert events["m:ajs-batch-0003"]["value"] == "slides.pdf"


def test_write_key_in_the_body_is_accepted(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    answer = post(ingest, "/v1/track", {"writeKey": "wk_live_123", "event": "Signed Up", "userId": "u1"})
    assert answer["statusCode"] == 200


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"wk_unknown_9:").decode()},
        {"Authorization": "Basic %%%"},
    ],
)
def test_unknown_or_missing_write_key_is_401(ingest: Invoke, demo_config: Any, auth: dict[str, str]) -> None:
    answer = post(ingest, "/v1/track", {"event": "e", "userId": "u"}, headers=auth)
    assert (answer["statusCode"], error_code(answer)) == (401, "UNAUTHORIZED")


def test_segment_size_limits(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    call = {"event": "e", "userId": "u", "properties": {"blob": "x" * (32 * 1024)}}
    assert error_code(post(ingest, "/v1/track", call, headers=WRITE_KEY_AUTH)) == "ANALYTICS_002"
    calls = [
        {
            "type": "track",
            "event": "e",
            "userId": "u",
            "messageId": f"m{i}",
            "properties": {"b": "x" * 20_000},
        }
        for i in range(26)
    ]
    answer = post(ingest, "/v1/batch", {"batch": calls}, headers=WRITE_KEY_AUTH)
    assert (answer["statusCode"], error_code(answer)) == (400, "ANALYTICS_002")
    answer = post(ingest, "/v1/batch", {"batch": calls[:24]}, headers=WRITE_KEY_AUTH)
    assert answer["statusCode"] == 200
    assert len(stored_events(aws)) == 24


def test_a_repeated_message_id_leaves_exactly_one_event(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    call = {"event": "Signed Up", "userId": "u1", "messageId": "msg-1"}
    for _ in range(3):
        assert post(ingest, "/v1/track", call, headers=WRITE_KEY_AUTH)["statusCode"] == 200
    batch = {
        "batch": [
            {**call, "type": "track"},
            {**call, "type": "track"},
            {"type": "track", "event": "x", "userId": "u1", "messageId": "msg-2"},
        ]
    }
    for _ in range(2):
        assert post(ingest, "/v1/batch", batch, headers=WRITE_KEY_AUTH)["statusCode"] == 200
    assert sorted(e["event_id"] for e in stored_events(aws)) == ["m:msg-1", "m:msg-2"]


def test_a_plugin_calls_repeated_message_id_is_stored_and_counted_once(
    ingest: Invoke, aggregate: Invoke, query: Invoke, aws: Any, demo_config: Any
) -> None:
    path = "/v1/plugins/demo-plugin/track"
    call = {"key": "emoji-reactions", "value": "joy", "user_id": "participant-42", "message_id": "sdk-1"}
    for _ in range(3):  # a retry whose answer was lost, twice
        assert post(ingest, path, call)["statusCode"] == 200
    batch = {"events": [call, call, {**call, "user_id": "participant-7"}, {**call, "message_id": "sdk-2"}]}
    assert post(ingest, path, batch)["statusCode"] == 200
    assert post(ingest, path, {**call, "message_id": None})["statusCode"] == 200  # no id: a new event
    stored = stored_events(aws)
    assert sorted(e["event_id"] for e in stored if e["event_id"].startswith("m:")) == ["m:sdk-1", "m:sdk-2"]
    assert len(stored) == 3
    aggregate_stored_events(aws, aggregate)
    row = body(
        query(
            api_event(
                "GET", "/v1/plugins/demo-plugin/users/participant-42", headers={"x-api-key": SAMPLE_ADMIN_KEY}
            )
        )
    )
    assert row["values"]["emoji-reactions"]["value"]["total"] == 3  # sdk-1, sdk-2 and the unnamed one
    too_long = post(ingest, path, {**call, "message_id": "x" * 129})
    assert too_long["statusCode"] == 422


def test_a_throttled_batch_is_503_and_its_retry_stores_each_call_once(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    calls = [{"type": "track", "event": "e", "userId": f"u{i}", "messageId": f"m-{i}"} for i in range(60)]
    # Calls the client named are a claim and a conditional put each: 50 land, then storage throttles.
    with dynamodb_fails("PutItem", after=50, when=lambda p: p["TableName"] == "EventsTable"):
        assert post(ingest, "/v1/batch", {"batch": calls}, headers=WRITE_KEY_AUTH)["statusCode"] == 503
    assert 0 < len(stored_events(aws)) <= 25
    assert post(ingest, "/v1/batch", {"batch": calls}, headers=WRITE_KEY_AUTH)["statusCode"] == 200
    assert len(stored_events(aws)) == 60


def test_unknown_route_is_404(ingest: Invoke) -> None:
    event = api_event("POST", "/v1/track", {})
    event["path"] = "/v1/nothing-here"
    answer = ingest(event)
    assert (answer["statusCode"], error_code(answer)) == (404, "NOT_FOUND")


def test_failed_requests_are_counted_in_cloudwatch_metrics_and_successes_are_not(
    ingest: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    post(ingest, "/api/analytics/track", widget())
    post(ingest, "/api/analytics/track", {"event": "nope", "token": "user_abc123def456"})
    with dynamodb_fails("PutItem"):
        post(ingest, "/api/analytics/track", widget())
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = [[m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]] for blob in emitted]
    assert names == [["RequestsRejected"], ["StorageUnavailable"]]
    assert emitted[1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "EventTracking"
    assert emitted[1]["service"] == "event-tracking"
