"""What an attacker with no credentials tried, each a test that failed before its fix: nothing a client
sends can break storage, aggregation or reads, and a retry never counts twice."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event, key_order
from tests.integration.conftest import (
    Invoke,
    aggregate_stored_events,
    body,
    stored_events,
)
from tests.integration.faults import dynamodb_fails
from tracking.storage.dynamo import client

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}


def raw_post(invoke: Invoke, path: str, text: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return invoke(api_event("POST", path, raw=text.encode("utf-8", "surrogatepass"), headers=headers))


def reads_of(query: Invoke, plugin: str) -> list[dict[str, Any]]:
    """Every dashboard read of the plugin, as a dashboard makes them."""
    paths = [
        f"/v1/plugins/{plugin}/columns",
        f"/v1/plugins/{plugin}/rows",
        f"/v1/plugins/{plugin}/export.csv",
        f"/v1/plugins/{plugin}/users/participant-1",
        f"/v1/plugins/{plugin}/rejections",
        "/v1/plugins",
    ]
    answers = [query(api_event("GET", path, headers=ADMIN)) for path in paths]
    answers.append(
        query(api_event("GET", "/api/analytics/summary", headers=ADMIN, query={"chatbot_id": plugin}))
    )
    return answers


def assert_every_read_answers(query: Invoke, plugin: str) -> None:
    for answer in reads_of(query, plugin):
        assert answer["statusCode"] in (200, 404), answer
        answer["body"].encode("utf-8")  # sendable


# 1 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"key": "handouts", "value": "\\udc00", "user_id": "participant-1"}',
        '{"key": "handouts", "value": "a\\u0000b", "user_id": "participant-1"}',
        '{"events": [{"key": "handouts", "value": "x", "user_id": "participant-1", "\\ud800": 1}]}',
    ],
)
def test_a_lone_surrogate_or_nul_anywhere_is_400_and_every_read_still_answers(
    ingest: Invoke, query: Invoke, aws: Any, demo_config: Any, text: str
) -> None:
    answer = raw_post(ingest, "/v1/plugins/demo-plugin/track", text)
    assert (answer["statusCode"], body(answer)["error"]["code"]) == (400, "ANALYTICS_001")
    assert stored_events(aws) == []
    assert_every_read_answers(query, "demo-plugin")


def test_surrogates_in_traits_and_context_of_a_segment_call_are_400(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    for text in (
        '{"type": "identify", "userId": "u", "traits": {"name": "\\udc00"}}',
        '{"event": "e", "userId": "u", "context": {"page": {"title": "\\ud83d"}}}',
        '{"batch": [{"type": "track", "event": "e", "userId": "u", "properties": {"\\udfff": 1}}]}',
    ):
        path = (
            "/v1/batch"
            if text.startswith('{"batch"')
            else ("/v1/identify" if "identify" in text else "/v1/track")
        )
        answer = raw_post(ingest, path, text, BASIC)
        assert (answer["statusCode"], body(answer)["code"]) == (400, "ANALYTICS_001")
    assert stored_events(aws) == []


# 2 -----------------------------------------------------------------------------------------------------


def test_absurd_client_times_are_capped_and_the_batch_aggregates_whole(
    ingest: Invoke, aggregate: Invoke, query: Invoke, aws: Any, demo_config: Any
) -> None:
    calls = [
        {"type": "track", "event": "P1", "userId": "P1-b0", "messageId": "b0"},
        {
            "type": "track",
            "event": "P1",
            "userId": "P1-bad",
            "messageId": "bad",
            "sentAt": "9999-12-31T23:59:59Z",
            "originalTimestamp": "0001-01-01T00:00:00Z",
        },
        {"type": "track", "event": "P1", "userId": "P1-b1", "messageId": "b1"},
    ]
    assert ingest(api_event("POST", "/v1/batch", {"batch": calls}, headers=BASIC))["statusCode"] == 200
    assert {e["message_id"]: e["time_adjusted"] for e in stored_events(aws)} == {
        "b0": None,
        "bad": "past",
        "b1": None,
    }
    aggregate_stored_events(aws, aggregate)  # asserts no record failed
    for user in ("P1-b0", "P1-bad", "P1-b1"):
        row = query(api_event("GET", f"/v1/plugins/demo-plugin/users/{user}", headers=ADMIN))
        assert body(row)["values"]["P1"]["value"] == 1


# 3 -----------------------------------------------------------------------------------------------------


class _AnswerLost:
    """Lets the call reach DynamoDB (it commits), then loses its answer, as a read timeout would."""

    def __init__(self) -> None:
        self.times = 0

    def __call__(self, **_: Any) -> None:
        self.times += 1
        raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")


@pytest.mark.parametrize(
    ("operation", "path", "payload"),
    [
        (
            "TransactWriteItems",
            "/v1/plugins/demo-plugin/track",
            {
                "user_id": "p",
                "events": [{"key": "handouts", "value": "a"}, {"key": "handouts", "value": "b"}],
            },
        ),
        (
            "PutItem",
            "/api/analytics/track",
            {"event": "visitor", "token": "user_abc123def456", "data": {"chatbot_id": "b"}},
        ),
    ],
)
def test_a_write_that_committed_but_whose_answer_was_lost_is_answered_200_and_stored_once(
    ingest: Invoke, aws: Any, demo_config: Any, operation: str, path: str, payload: Any
) -> None:
    lost = _AnswerLost()
    event = f"after-call.dynamodb.{operation}"
    client().meta.events.register(event, lost)
    try:
        answer = ingest(api_event("POST", path, payload))
    finally:
        client().meta.events.unregister(event, lost)
    # The function looked before answering: the write had landed, so the call succeeded
    assert lost.times >= 1
    assert answer["statusCode"] == 200
    stored = len(stored_events(aws))
    assert stored == (2 if operation == "TransactWriteItems" else 1)


def test_a_write_that_never_landed_is_503_and_its_retry_stores_once(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    payload = {
        "user_id": "p",
        "events": [{"key": "handouts", "value": "a"}, {"key": "handouts", "value": "b"}],
    }
    with dynamodb_fails("TransactWriteItems", code="InternalServerError"):
        assert ingest(api_event("POST", "/v1/plugins/demo-plugin/track", payload))["statusCode"] == 503
    assert stored_events(aws) == []
    assert ingest(api_event("POST", "/v1/plugins/demo-plugin/track", payload))["statusCode"] == 200
    assert len(stored_events(aws)) == 2


# 4 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text", "headers", "field"),
    [
        ("/v1/plugins/demo-plugin/track", '{"key": "rating", "value": 1e-131, "user_id": "p"}', {}, "value"),
        (
            "/api/analytics/track",
            '{"event": "purchase", "token": "user_abc123def456", '
            '"data": {"items": [{"price": 123456789012345678901234567890123456789}]}}',
            {},
            "data.items[0].price",
        ),
        (
            "/v1/track",
            '{"event": "Order Completed", "userId": "u", "properties": {"value": 1e126}}',
            BASIC,
            "properties.value",
        ),
        (
            "/v1/batch",
            '{"batch": [{"type": "track", "event": "Product Added", "userId": "u", '
            '"properties": {"price": NaN}}]}',
            BASIC,
            "properties.price",  # a batch is judged call by call: the call's own field, under its index
        ),
    ],
)
def test_numbers_no_table_can_hold_are_422_naming_the_field(
    ingest: Invoke, aws: Any, demo_config: Any, path: str, text: str, headers: dict[str, str], field: str
) -> None:
    answer = raw_post(ingest, path, text, headers)
    assert answer["statusCode"] == 422
    details = body(answer)["error"]["details"]
    if path == "/v1/batch":
        ((refused,),) = [[d for d in details if d["index"] == 0]]
        details = refused["details"]
    assert [d["field"] for d in details] == [field]
    assert stored_events(aws) == []


def test_the_legacy_get_checks_its_data_the_same_way(ingest: Invoke, aws: Any) -> None:
    d = '{"chatbot_id": "b", "items": [{"price": 1e-200}]}'
    answer = ingest(
        api_event("GET", "/api/analytics/track", query={"e": "purchase", "u": "user_abc123def456", "d": d})
    )
    assert (answer["statusCode"], body(answer)["error"]["details"][0]["field"]) == (
        422,
        "data.items[0].price",
    )
    answer = ingest(
        api_event(
            "GET",
            "/api/analytics/track",
            query={"e": "visitor", "u": "user_abc123def456", "d": '{"x": "\\ud800"}'},
        )
    )
    assert answer["statusCode"] == 400
    assert stored_events(aws) == []


def test_a_segment_call_without_message_id_holding_a_surrogate_is_400(
    ingest: Invoke, demo_config: Any
) -> None:
    answer = raw_post(
        ingest,
        "/v1/track",
        '{"event": "e", "userId": "u", "timestamp": "2025-01-01T00:00:00Z", "properties": {"x": "\\udc00"}}',
        BASIC,
    )
    assert answer["statusCode"] == 400


# 5 -----------------------------------------------------------------------------------------------------


def test_a_numeric_chatbot_id_is_422_and_never_read_as_that_plugin(
    ingest: Invoke, query: Invoke, aws: Any
) -> None:
    config = {"allowed_origins": ["https://shop.example"]}
    assert query(api_event("PUT", "/v1/plugins/12345/config", config, headers=ADMIN))["statusCode"] == 200
    payload = {"event": "visitor", "token": "user_abc123def456", "data": {"chatbot_id": 12345}}
    answer = ingest(
        api_event("POST", "/api/analytics/track", payload, headers={"Origin": "https://evil.example"})
    )
    assert answer["statusCode"] == 422
    assert body(answer)["error"]["details"][0]["field"] == "data.chatbot_id"
    assert stored_events(aws) == []


# 6 -----------------------------------------------------------------------------------------------------


def participants_holding(
    value: str, ingest: Invoke, aggregate: Invoke, aws: Any, participants: int = 150, times: int = 4
) -> None:
    """Participants whose handouts hold ``value`` ``times`` times (an array keeps 4,000 bytes)."""
    for n in range(participants):
        values = [{"key": "handouts", "value": value, "user_id": f"participant-{n:04d}"}] * times
        sent = ingest(
            api_event(
                "POST", "/v1/plugins/demo-plugin/track", {"events": values}, ip=f"10.6.{n // 250}.{n % 250}"
            )
        )
        assert sent["statusCode"] == 200
    aggregate_stored_events(aws, aggregate)


@pytest.fixture
def emoji_participants(ingest: Invoke, aggregate: Invoke, aws: Any, demo_config: Any) -> None:
    """450,000 emoji (an array keeps 4,000 bytes: 1,000 of them): 1.8 MB of UTF-8, and 5.4 MB as
    Lambda's answer escapes them (12 bytes each)."""
    participants_holding("😍" * 1000, ingest, aggregate, aws, participants=450, times=1)


@pytest.fixture
def control_character_participants(ingest: Invoke, aggregate: Invoke, aws: Any, demo_config: Any) -> None:
    """600,000 U+0001: 600 KB stored (one DynamoDB page), but a row's JSON escapes each as \\u0001 in
    its value and again in its display, and Lambda escapes that text again: 8.4 MB as sent."""
    participants_holding("\x01" * 1000, ingest, aggregate, aws)


def read_all_parts(
    query: Invoke, path: str, next_cursor: Callable[[dict[str, Any]], str | None]
) -> list[str]:
    """Every part of a paged read, each checked to fit Lambda's 6 MB response limit as sent."""
    parts, cursor = [], None
    while True:
        params = {"aggregation.handouts": "array", "limit": "200", **({"cursor": cursor} if cursor else {})}
        answer = query(api_event("GET", path, headers=ADMIN, query=params))
        assert answer["statusCode"] == 200
        # What Lambda sends is the JSON of its answer: it stays under the 6 MB response limit
        assert len(json.dumps(answer)) < 6 * 1024 * 1024
        parts.append(answer["body"])
        cursor = next_cursor(answer)
        if not cursor:
            return parts


def test_the_csv_budget_counts_what_the_answer_weighs(query: Invoke, emoji_participants: None) -> None:
    parts = read_all_parts(
        query,
        "/v1/plugins/demo-plugin/export.csv",
        lambda answer: answer["multiValueHeaders"].get("X-Next-Cursor", [None])[0],
    )
    assert len(parts) >= 2
    users = {line.split(",", 1)[0] for part in parts for line in part.splitlines()}
    assert len(users - {"\ufeffuser_id"}) == 450


def test_a_page_of_rows_ends_before_the_response_limit(
    query: Invoke, control_character_participants: None
) -> None:
    parts = read_all_parts(query, "/v1/plugins/demo-plugin/rows", lambda answer: body(answer)["next_cursor"])
    assert len(parts) >= 2
    users = [row["user_id"] for part in parts for row in json.loads(part)["rows"]]
    assert users == key_order(f"participant-{n:04d}" for n in range(150))


# 7 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/plugins/demo-plugin/rows", {"limit": "²"}),
        ("/v1/plugins/demo-plugin/rows", {"limit": "١٢"}),
        ("/api/analytics/summary", {"chatbot_id": "demo-plugin", "to": "0001-01-01"}),
        (
            "/v1/plugins/demo-plugin/rows",
            {"cursor": base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()},
        ),
        (
            "/v1/plugins/demo-plugin/rejections",
            {"cursor": base64.urlsafe_b64encode(b'{"before": {}}').decode()},
        ),
    ],
)
def test_bad_query_parameters_are_422_not_500(
    query: Invoke, demo_config: Any, path: str, params: dict[str, str]
) -> None:
    answer = query(api_event("GET", path, headers=ADMIN, query=params))
    assert (answer["statusCode"], body(answer)["error"]["code"]) == (422, "VALIDATION")


# Found by the hostile property test: keys longer in bytes than DynamoDB's key limits -----------------


def test_an_order_number_too_long_for_a_dynamodb_key_is_stored_and_counted_once(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    # 400 emoji: 400 characters (the widget allows 512) but 1,600 bytes, over a sort key's 1,024.
    payload = {
        "event": "purchase",
        "token": "user_abc123def456",
        "data": {"chatbot_id": "demo-plugin", "orderNum": "😍" * 400},
    }
    for _ in range(2):
        assert ingest(api_event("POST", "/api/analytics/track", payload))["statusCode"] == 200
    stored = stored_events(aws)
    assert len(stored) == 1
    assert stored[0]["order_id"] == "😍" * 400
    assert stored[0]["event_id"].startswith("o#")


def test_a_message_id_too_long_for_a_dynamodb_key_is_stored_and_counted_once(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    call = {"event": "rating", "userId": "u", "messageId": "😍" * 256, "properties": {"value": 4}}
    for _ in range(2):
        assert ingest(api_event("POST", "/v1/track", call, headers=BASIC))["statusCode"] == 200
    assert [event["message_id"] for event in stored_events(aws)] == ["😍" * 256]


@pytest.mark.parametrize(
    ("path", "payload", "headers", "field"),
    [
        (
            "/v1/plugins/demo-plugin/track",
            {"key": "rating", "value": 1, "user_id": "😍" * 200},
            {},
            "user_id",
        ),
        ("/v1/plugins/demo-plugin/track", {"key": "😍" * 100, "value": 1, "user_id": "u"}, {}, "key"),
        ("/v1/track", {"event": "😍" * 100, "userId": "u"}, BASIC, "event"),
        ("/v1/identify", {"userId": "😍" * 129}, BASIC, "userId"),
        (
            "/api/analytics/track",
            {"event": "visitor", "token": "user_abc123def456", "data": {"chatbot_id": "😍" * 200}},
            {},
            "data.chatbot_id",
        ),
    ],
)
def test_identifiers_and_keys_are_capped_in_bytes(
    ingest: Invoke,
    aws: Any,
    demo_config: Any,
    path: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    field: str,
) -> None:
    answer = ingest(api_event("POST", path, payload, headers=headers))
    assert answer["statusCode"] == 422, answer
    details = body(answer)["error"]["details"]
    assert any(d["field"] == field and "bytes" in d["message"] for d in details), details
    assert stored_events(aws) == []
