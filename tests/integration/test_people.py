"""Identity and people through the handlers (on moto): profiles, links and what reads show of them,
the right of access, deletion with suppression and its resumption."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import Invoke, Stream, body, readable, scan, stored_events, stored_rejections
from tracking.keys import SEP
from tracking.storage.dynamo import client

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}


@pytest.fixture(autouse=True)
def no_cache(function_env: Any) -> None:
    # Ingest sees a suppression at once; the final sweep does not wait for caches.
    function_env(CONFIG_CACHE_SECONDS="0", RATE_LIMIT_PER_MINUTE="0")


def segment(ingest: Invoke, path: str, call: dict[str, Any]) -> None:
    answer = ingest(api_event("POST", path, call, headers=BASIC))
    assert answer["statusCode"] == 200, answer


def rating(ingest: Invoke, user: str, value: int, message_id: str | None = None, **extra: Any) -> None:
    call: dict[str, Any] = {"event": "rating", "userId": user, "properties": {"value": value}, **extra}
    if message_id:
        call["messageId"] = message_id
    segment(ingest, "/v1/track", call)


def user(query: Invoke, user_id: str) -> dict[str, Any]:
    answer = query(api_event("GET", f"/v1/plugins/demo-plugin/users/{user_id}", headers=ADMIN))
    assert answer["statusCode"] == 200, answer
    found: dict[str, Any] = body(answer)
    return found


def rows(query: Invoke) -> list[str]:
    answer = query(api_event("GET", "/v1/plugins/demo-plugin/rows", headers=ADMIN))
    return [row["user_id"] for row in body(answer)["rows"]]


@pytest.fixture
def anonymous_then_identified(ingest: Invoke, query: Invoke, stream: Stream, demo_config: Any) -> Stream:
    """Anonymous visitor A rates twice; then identifies as U (who rated once), with traits."""
    segment(ingest, "/v1/track", {"event": "rating", "anonymousId": "A", "properties": {"value": 2}})
    segment(ingest, "/v1/track", {"event": "rating", "anonymousId": "A", "properties": {"value": 4}})
    rating(ingest, "U", 9, message_id="msg-u-1")
    stream.aggregate()
    assert sorted(rows(query)) == ["A", "U"]
    identify = {"userId": "U", "anonymousId": "A", "traits": {"name": "Ana", "plan": "pro"}}
    segment(ingest, "/v1/identify", identify)
    stream.aggregate()
    return stream


def test_an_identify_merges_the_anonymous_row_into_the_user(
    query: Invoke, anonymous_then_identified: Stream
) -> None:
    assert rows(query) == ["U"]
    found = user(query, "U")
    assert found["values"]["rating"]["value"] == 5  # (2 + 4 + 9) / 3
    assert found["anonymous_ids"] == ["A"]
    assert found["traits"] == {"name": "Ana", "plan": "pro"}
    assert "merged_into" not in found
    anonymous = user(query, "A")
    assert (anonymous["user_id"], anonymous["merged_into"]) == ("U", "U")
    assert anonymous["values"] == found["values"]


def test_a_later_event_of_the_anonymous_id_counts_for_the_user(
    ingest: Invoke, query: Invoke, anonymous_then_identified: Stream
) -> None:
    segment(ingest, "/v1/track", {"event": "rating", "anonymousId": "A", "properties": {"value": 5}})
    anonymous_then_identified.aggregate()
    assert user(query, "U")["values"]["rating"]["value"] == 5  # (2 + 4 + 9 + 5) / 4
    assert rows(query) == ["U"]


def test_a_conflicting_link_is_refused_and_recorded(
    ingest: Invoke, query: Invoke, aws: Any, anonymous_then_identified: Stream
) -> None:
    segment(ingest, "/v1/alias", {"previousId": "A", "userId": "V"})
    anonymous_then_identified.aggregate()
    assert user(query, "A")["user_id"] == "U"  # the first link wins
    refused = [r for r in stored_rejections(aws) if "previousId" in r.get("entries", "")]
    assert len(refused) == 1
    anonymous_then_identified.aggregate()  # the refusal's own record counts it
    summary = query(
        api_event("GET", "/api/analytics/summary", headers=ADMIN, query={"chatbot_id": "demo-plugin"})
    )
    assert body(summary)["rejected"].get("VALIDATION") == 1


def test_traits_are_the_latest_by_event_time_and_groups_keep_theirs(
    ingest: Invoke, query: Invoke, stream: Stream, demo_config: Any
) -> None:
    later = {"userId": "U", "traits": {"plan": "team"}, "timestamp": "2025-11-24T10:00:00Z"}
    earlier = {"userId": "U", "traits": {"plan": "free", "city": "Lyon"}, "timestamp": "2025-11-24T09:00:00Z"}
    segment(ingest, "/v1/identify", later)
    segment(ingest, "/v1/identify", earlier)
    segment(ingest, "/v1/group", {"userId": "U", "groupId": "acme", "traits": {"employees": 12}})
    context = {
        "event": "rating",
        "userId": "U",
        "properties": {"value": 3},
        "context": {"traits": {"vip": True}},
    }
    segment(ingest, "/v1/track", context)
    stream.aggregate()
    found = user(query, "U")
    assert found["traits"] == {"city": "Lyon", "plan": "team", "vip": True}
    assert found["groups"] == {"acme": {"employees": 12}}
    assert found["first_seen"] <= found["last_seen"]


def test_the_csv_shows_traits_after_the_keys(query: Invoke, anonymous_then_identified: Stream) -> None:
    answer = query(api_event("GET", "/v1/plugins/demo-plugin/export.csv", headers=ADMIN))
    table = list(csv.reader(io.StringIO(answer["body"].removeprefix("\ufeff"))))
    header = table[0]
    assert header[-2:] == ["traits.name", "traits.plan"]
    (row,) = [line for line in table[1:] if line[0] == "U"]
    assert row[-2:] == ["Ana", "pro"]
    assert [line[0] for line in table[1:]] == ["U"]


def test_the_right_of_access_lists_every_event_in_event_time_order(
    ingest: Invoke, query: Invoke, anonymous_then_identified: Stream
) -> None:
    # 20 more client-named events: past what an aggregate lists itself, they move to an index item.
    for n in range(20):
        rating(ingest, "U", 1, message_id=f"msg-bulk-{n}", timestamp=f"2025-11-24T08:{n:02d}:00Z")
    # One sent from their phone: the export shows its device as stored (context.bot, context.agent).
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"  # noqa: E501
    rating(ingest, "U", 2, message_id="msg-phone", context={"userAgent": phone})
    anonymous_then_identified.aggregate()
    lines: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        answer = query(
            api_event("GET", "/v1/plugins/demo-plugin/users/A/events", headers=ADMIN, query=params)
        )
        assert answer["statusCode"] == 200, answer
        assert answer["multiValueHeaders"]["Content-Type"][0].startswith("application/x-ndjson")
        lines += [json.loads(line) for line in answer["body"].splitlines()]
        cursor = answer["multiValueHeaders"].get("X-Next-Cursor", [None])[0]
        if not cursor:
            break
    times = [line["event_time"] for line in lines]
    assert times == sorted(times)
    assert len(lines) == 2 + 1 + 1 + 20 + 1  # A's two, U's rating, the identify, the bulk, the phone's
    (sent,) = [line for line in lines if line.get("message_id") == "msg-phone"]
    assert sent["context"]["bot"] is False
    assert sent["context"]["agent"] == {"browser": "Mobile Safari", "os": "iOS", "device": "mobile"}
    assert {line["user_id"] for line in lines} == {"A", "U"}
    dashboard_key = query(api_event("POST", "/v1/plugins/demo-plugin/keys", headers=ADMIN))
    reader = {"x-api-key": body(dashboard_key)["key"]}
    refused = query(api_event("GET", "/v1/plugins/demo-plugin/users/U/events", headers=reader))
    assert refused["statusCode"] == 403  # admin key only


JSON_SEP = json.dumps(SEP)[1:-1]  # the key separator as it reads in a JSON dump of an item


def everything_of(aws: Any, *ids: str) -> list[dict[str, Any]]:
    """Every stored item that names one of these ids, in any table."""
    found = []
    for table in ("EventsTable", "AggregatesTable"):
        for item in scan(aws, table):
            text = readable(item)
            if any(f'"{i}"' in text or f"{JSON_SEP}{i}" in text for i in ids):
                found.append(item)
    return found


def test_a_deletion_forgets_the_user_and_their_anonymous_ids_and_suppresses_them(
    ingest: Invoke, query: Invoke, aws: Any, anonymous_then_identified: Stream
) -> None:
    for n in range(20):  # enough client-named events to need an index item
        rating(ingest, "U", 1, message_id=f"msg-bulk-{n}")
    anonymous_then_identified.aggregate()
    answer = query(api_event("DELETE", "/v1/plugins/demo-plugin/users/U", headers=ADMIN))
    assert answer["statusCode"] == 202
    deletion = body(answer)
    assert deletion["status"] == "pending"
    anonymous_then_identified.forget_all()
    status = query(
        api_event("GET", f"/v1/plugins/demo-plugin/deletions/{deletion['deletion_id']}", headers=ADMIN)
    )
    done = body(status)
    assert done["status"] == "done"
    assert done["removed"]["events"] == 2 + 1 + 1 + 20
    assert everything_of(aws, "U", "A") == []
    for user_id in ("U", "A"):
        gone = query(api_event("GET", f"/v1/plugins/demo-plugin/users/{user_id}", headers=ADMIN))
        assert gone["statusCode"] == 404
    assert rows(query) == []
    # Suppressed: answered 200, stored nowhere.
    before = len(stored_events(aws))
    rating(ingest, "U", 7)
    segment(ingest, "/v1/track", {"event": "rating", "anonymousId": "A", "properties": {"value": 1}})
    assert len(stored_events(aws)) == before
    lift = query(api_event("DELETE", "/v1/plugins/demo-plugin/suppressions/U", headers=ADMIN))
    assert lift["statusCode"] == 200
    rating(ingest, "U", 7)
    anonymous_then_identified.aggregate()
    assert user(query, "U")["values"]["rating"]["value"] == 7


def test_a_deletion_without_suppression_lets_later_calls_count(
    ingest: Invoke, query: Invoke, anonymous_then_identified: Stream
) -> None:
    answer = query(
        api_event("DELETE", "/v1/plugins/demo-plugin/users/U", headers=ADMIN, query={"suppress": "false"})
    )
    assert answer["statusCode"] == 202
    anonymous_then_identified.forget_all()
    rating(ingest, "U", 3)
    anonymous_then_identified.aggregate()
    assert user(query, "U")["values"]["rating"]["value"] == 3


@pytest.fixture
def writes_fail_after(aws: Any) -> Iterator[list[int]]:
    """Deletes start failing after the given number of BatchWriteItem calls (a crash half way)."""
    budget: list[int] = []
    calls = [0]

    def hook(**_: Any) -> None:
        calls[0] += 1
        if budget and calls[0] > budget[0]:
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchWriteItem"
            )

    client().meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", hook)
    yield budget
    client().meta.events.unregister("before-parameter-build.dynamodb.BatchWriteItem", hook)


def test_an_interrupted_deletion_resumes_and_finishes(
    ingest: Invoke,
    query: Invoke,
    forget: Invoke,
    aws: Any,
    anonymous_then_identified: Stream,
    writes_fail_after: list[int],
) -> None:
    for n in range(60):
        rating(ingest, "U", 1, message_id=f"msg-bulk-{n}")
    anonymous_then_identified.aggregate()
    answer = query(api_event("DELETE", "/v1/plugins/demo-plugin/users/U", headers=ADMIN))
    deletion_id = body(answer)["deletion_id"]
    writes_fail_after.append(2)  # the step dies after two batches of deletes
    (step,) = [i for i in scan(aws, "EventsTable") if i["kind"]["S"] == "deletion"]
    record = {
        "eventName": "INSERT",
        "dynamodb": {"SequenceNumber": "1", "NewImage": step, "StreamViewType": "NEW_IMAGE"},
    }
    failed = forget({"Records": [record]})
    assert failed == {"batchItemFailures": [{"itemIdentifier": "1"}]}
    assert len(everything_of(aws, "U")) > 0  # half done
    writes_fail_after.clear()
    assert forget({"Records": [record]}) == {"batchItemFailures": []}  # Lambda delivers it again
    anonymous_then_identified.forget_all()
    status = query(api_event("GET", f"/v1/plugins/demo-plugin/deletions/{deletion_id}", headers=ADMIN))
    assert body(status)["status"] == "done"
    assert everything_of(aws, "U", "A") == []
