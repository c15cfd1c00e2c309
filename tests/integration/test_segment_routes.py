"""The Segment-spec routes on moto, as real clients call them: every call type and analytics.js's
short paths, gzip and deflate bodies, batches judged call by call, Segment's error fields, messageId
per plugin, and the rejections route."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections import Counter
from typing import Any

import pytest

from devstack.local.capacity import metered
from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import (
    Invoke,
    aggregate_stored_events,
    body,
    stored_events,
    stored_rejections,
)
from tests.integration.faults import dynamodb_fails
from tracking.storage.dynamo import client

WRITE_KEY = "wk_live_123"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BROWSER = {"Origin": "https://app.example.com", "Content-Type": "text/plain"}


def call(kind: str = "track", message_id: str | None = None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": kind, "userId": "u-1"}
    if kind == "track":
        base["event"] = "Signed Up"
    if message_id:
        base["messageId"] = message_id
    return {**base, **fields}


def post(ingest: Invoke, path: str, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return ingest(api_event("POST", path, payload, headers=BASIC if headers is None else headers))


def compressed(path: str, payload: Any, coding: str, headers: dict[str, str]) -> dict[str, Any]:
    raw = json.dumps(payload).encode()
    data = gzip.compress(raw) if coding == "gzip" else zlib.compress(raw)
    return api_event("POST", path, raw=data, headers={**headers, "Content-Encoding": coding})


@pytest.mark.parametrize(
    ("path", "kind", "fields"),
    [
        ("/v1/track", "track", {}),
        ("/v1/identify", "identify", {"traits": {"plan": "pro"}}),
        ("/v1/page", "page", {"name": "Home"}),
        ("/v1/screen", "screen", {"name": "Feed"}),
        ("/v1/group", "group", {"groupId": "g-1"}),
        ("/v1/alias", "alias", {"previousId": "anon-1"}),
    ],
)
def test_every_call_type_has_its_route(
    ingest: Invoke, aws: Any, demo_config: Any, path: str, kind: str, fields: dict[str, Any]
) -> None:
    payload = {k: v for k, v in call(kind, "m-1", **fields).items() if k != "type"}
    answer = post(ingest, path, payload)
    assert (answer["statusCode"], body(answer)) == (200, {"success": True})
    (event,) = stored_events(aws)
    assert (event["kind"], event["message_id"]) == (kind, "m-1")


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/v1/t", "track"), ("/v1/i", "identify"), ("/v1/p", "page"), ("/v1/s", "screen"), ("/v1/g", "group")],
)
def test_analytics_js_short_paths_with_text_plain_from_a_browser(
    ingest: Invoke, aws: Any, demo_config: Any, path: str, kind: str
) -> None:
    extra = {"groupId": "g-1"} if kind == "group" else {}
    payload = {**call(kind, f"ajs-{kind}", **extra), "writeKey": WRITE_KEY}
    preflight = ingest(
        api_event(
            "OPTIONS", path, headers={"Origin": BROWSER["Origin"], "Access-Control-Request-Method": "POST"}
        )
    )
    assert preflight["statusCode"] == 204
    assert "POST" in preflight["multiValueHeaders"]["Access-Control-Allow-Methods"][0]
    answer = post(ingest, path, payload, headers=BROWSER)
    assert (answer["statusCode"], body(answer)) == (200, {"success": True})
    assert answer["multiValueHeaders"]["Access-Control-Allow-Origin"] == ["*"]
    assert [e["kind"] for e in stored_events(aws)] == [kind]


def test_alias_short_path(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    payload = {"type": "alias", "previousId": "anon-1", "userId": "u-1", "writeKey": WRITE_KEY}
    assert post(ingest, "/v1/a", payload, headers=BROWSER)["statusCode"] == 200
    ((event),) = stored_events(aws)
    assert (event["previous_id"], event["user_id"]) == ("anon-1", "u-1")


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/import", "/v1/b"])
def test_batch_routes_take_the_write_key_from_each_call_too(
    ingest: Invoke, aws: Any, demo_config: Any, path: str
) -> None:
    calls = [{**call("track", f"b-{i}"), "writeKey": WRITE_KEY} for i in range(3)]
    answer = post(ingest, path, {"batch": calls}, headers=BROWSER)
    assert (answer["statusCode"], body(answer)) == (200, {"success": True, "accepted": 3, "rejected": []})
    assert len(stored_events(aws)) == 3


def test_client_metrics_are_answered_and_stored_nowhere(ingest: Invoke, aws: Any) -> None:
    answer = post(
        ingest, "/v1/m", {"series": [{"metric": "analytics_js.invoke", "value": 1}]}, headers=BROWSER
    )
    assert (answer["statusCode"], body(answer)) == (200, {"success": True})
    assert aws.scan(TableName="EventsTable")["Items"] == []


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compressed_bodies_on_every_post_ingest_route(
    ingest: Invoke, aws: Any, demo_config: Any, coding: str
) -> None:
    sends = [
        ("/v1/batch", {"batch": [call("track", "z-1")]}, BASIC),
        ("/v1/track", call("track", "z-2"), BASIC),
        ("/v1/plugins/demo-plugin/track", {"key": "handouts", "value": "a.pdf", "user_id": "p-1"}, {}),
        (
            "/api/analytics/track",
            {"event": "visitor", "token": "user_abc123def456", "data": {"chatbot_id": "b"}},
            {},
        ),
        ("/api/save", {"event": "bot_open", "token": "user_abc123def456", "data": {"chatbot_id": "b"}}, {}),
    ]
    for path, payload, headers in sends:
        answer = ingest(compressed(path, payload, coding, headers))
        assert answer["statusCode"] == 200, (path, answer["body"])
    assert len(stored_events(aws)) == len(sends)


def test_a_gzip_bomb_is_refused_and_stores_nothing(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    bomb = gzip.compress(b"[" + b"0," * 500_000 + b"0]")
    event = api_event("POST", "/v1/batch", raw=bomb, headers={**BASIC, "Content-Encoding": "gzip"})
    answer = ingest(event)
    assert (answer["statusCode"], body(answer)["code"]) == (400, "ANALYTICS_002")
    assert aws.scan(TableName="EventsTable")["Items"] == []


def test_a_batch_with_one_bad_call_stores_the_others_and_lists_it(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    calls = [call("track", f"ok-{i}") for i in range(9)]
    calls.insert(3, call("track", "bad-1", event="x" * 300))
    with metered(client()) as usage:
        answer = post(ingest, "/v1/batch", {"batch": calls})
    assert answer["statusCode"] == 200
    reply = body(answer)
    assert (reply["success"], reply["accepted"]) == (True, 9)
    ((rejected),) = reply["rejected"]
    assert (rejected["index"], rejected["messageId"], rejected["code"]) == (3, "bad-1", "VALIDATION")
    assert rejected["details"][0]["field"] == "event"
    assert sorted(e["message_id"] for e in stored_events(aws)) == sorted(f"ok-{i}" for i in range(9))
    # Cost: two writes (of one unit) per valid call (its messageId's claim, its event), one for the
    # request's rejections; and at most the rate limiter's lease, which any request may take.
    written = Counter({item: n for item, n in usage.items_written.items() if item[0] == "EventsTable"})
    assert (sum(written.values()), usage.write_units["EventsTable"]) == (2 * 9 + 1, 2 * 9 + 1)
    assert usage.write_units["ControlTable"] <= 1
    (record,) = stored_rejections(aws)
    assert record["counts"] == {"VALIDATION": 1}
    # A retry stores nothing twice.
    assert body(post(ingest, "/v1/batch", {"batch": calls}))["accepted"] == 9
    assert len(stored_events(aws)) == 9


def test_a_batch_with_no_valid_call_is_422_with_every_call_listed(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    answer = post(ingest, "/v1/batch", {"batch": [call("track", "a", userId=None), {"type": "nope"}]})
    assert answer["statusCode"] == 422
    reply = body(answer)
    assert (reply["success"], reply["code"], reply["error"]["code"]) == (False, "VALIDATION", "VALIDATION")
    assert reply["message"] == reply["error"]["message"]
    assert [(d["index"], d["code"]) for d in reply["error"]["details"]] == [
        (0, "VALIDATION"),
        (1, "VALIDATION"),
    ]
    assert stored_events(aws) == []


@pytest.mark.parametrize(
    ("payload", "headers", "status", "code"),
    [
        ({"event": "e", "userId": "u"}, {}, 401, "UNAUTHORIZED"),
        ({"event": "e"}, BASIC, 422, "VALIDATION"),
        ("[1, 2]", BASIC, 400, "ANALYTICS_001"),
    ],
)
def test_segment_errors_carry_segments_top_level_code_and_message(
    ingest: Invoke, demo_config: Any, payload: Any, headers: dict[str, str], status: int, code: str
) -> None:
    raw = payload.encode() if isinstance(payload, str) else None
    answer = ingest(api_event("POST", "/v1/track", None if raw else payload, raw=raw, headers=headers))
    reply = body(answer)
    assert (answer["statusCode"], reply["code"], reply["error"]["code"]) == (status, code, code)
    assert isinstance(reply["message"], str)
    assert reply["success"] is False


def test_other_routes_keep_the_contracts_error_shape(ingest: Invoke) -> None:
    answer = ingest(
        api_event("POST", "/api/analytics/track", {"event": "nope", "token": "user_abc123def456"})
    )
    assert set(body(answer)) == {"success", "error"}


def test_a_message_id_is_unique_per_plugin_whatever_its_user(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    first = post(ingest, "/v1/track", call("track", "shared-1", userId="alice"))
    again = post(ingest, "/v1/track", call("track", "shared-1", userId="bob"))
    batch = post(ingest, "/v1/batch", {"batch": [call("track", "shared-1", userId="carol")]})
    assert [a["statusCode"] for a in (first, again, batch)] == [200, 200, 200]
    assert [e["user_id"] for e in stored_events(aws)] == ["alice"]


def test_calls_without_message_id_are_two_events_unless_a_retry(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    bare = {"event": "Clicked", "userId": "u"}
    post(ingest, "/v1/track", bare)
    post(ingest, "/v1/track", bare)
    assert len(stored_events(aws)) == 2
    timed = {**bare, "timestamp": "2025-11-24T20:00:00Z"}
    post(ingest, "/v1/track", timed)
    post(ingest, "/v1/track", timed)
    assert len(stored_events(aws)) == 3
    events = stored_events(aws)
    assert all(e["message_id"] for e in events)


def test_an_explicit_historical_timestamp_is_kept(ingest: Invoke, aws: Any, demo_config: Any) -> None:
    payload = {
        "batch": [call("track", "h-1", timestamp="2024-03-01T10:00:00Z")],
        "sentAt": "2025-11-24T20:39:59Z",
    }
    post(ingest, "/v1/import", payload)
    (event,) = stored_events(aws)
    assert (event["event_time"], event["time_adjusted"]) == (1_709_287_200_000, None)
    assert event["client_times"] == {"timestamp": "2024-03-01T10:00:00Z", "sentAt": "2025-11-24T20:39:59Z"}


def test_a_future_timestamp_is_capped_and_aggregation_goes_on(
    ingest: Invoke, aggregate: Invoke, aws: Any, demo_config: Any
) -> None:
    calls = [
        call("track", "f-1", sentAt="9999-12-31T23:59:59Z", originalTimestamp="0001-01-01T00:00:00Z"),
        call("track", "f-2", timestamp="3000-01-01T00:00:00Z"),
    ]
    post(ingest, "/v1/batch", {"batch": calls})
    adjusted = {e["message_id"]: e["time_adjusted"] for e in stored_events(aws)}
    assert adjusted == {"f-1": "past", "f-2": "future"}
    aggregate_stored_events(aws, aggregate)  # no failure: every record applied


def test_rejections_are_listed_newest_first_for_dashboard_and_admin_keys(
    ingest: Invoke, query: Invoke, aggregate: Invoke, aws: Any, demo_config: Any
) -> None:
    post(ingest, "/v1/track", {"userId": "u", "properties": {"blob": "x" * 3000}})  # no event name
    post(ingest, "/v1/batch", {"batch": [call("track", "ok"), call("track", "b-1", event="e\x01")]})
    post(ingest, "/v1/plugins/demo-plugin/track", {"key": "nope", "user_id": "p"}, headers={})
    answer = query(api_event("GET", "/v1/plugins/demo-plugin/rejections", headers=ADMIN))
    assert answer["statusCode"] == 200
    listed = body(answer)["rejections"]
    assert [(r["dialect"], r["code"]) for r in listed] == [
        ("plugin", "VALIDATION"),
        ("segment", "VALIDATION"),
        ("segment", "VALIDATION"),
    ]
    assert set(listed[0]) == {"at", "dialect", "code", "message", "details", "payload"}
    assert listed[1]["details"][0]["field"] == "event"
    assert listed[2]["details"][0]["message"] == "event is required for a track call"
    assert len(listed[2]["payload"].encode()) == 2048  # cut
    assert listed[0]["at"].endswith("Z")
    # Pages of one, through the cursor
    seen, cursor = [], None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = body(
            query(api_event("GET", "/v1/plugins/demo-plugin/rejections", headers=ADMIN, query=params))
        )
        seen += page["rejections"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == listed
    # Kept 30 days
    (record, *_) = stored_rejections(aws)
    assert int(record["expires_at"]) - int(record["at"]) // 1000 == 30 * 86_400
    # Counted per code in the chatbot summary
    aggregate_stored_events(aws, aggregate)
    summary = body(
        query(api_event("GET", "/api/analytics/summary", headers=ADMIN, query={"chatbot_id": "demo-plugin"}))
    )
    assert summary["rejected"] == {"VALIDATION": 3}
    assert "VALIDATION" not in summary["counts"]


def test_a_key_of_another_plugin_cannot_read_rejections(query: Invoke, demo_config: Any) -> None:
    created = body(query(api_event("POST", "/v1/plugins/other/keys", {}, headers=ADMIN)))
    answer = query(
        api_event("GET", "/v1/plugins/demo-plugin/rejections", headers={"x-api-key": created["key"]})
    )
    assert answer["statusCode"] == 403
    bad_cursor = query(
        api_event("GET", "/v1/plugins/demo-plugin/rejections", headers=ADMIN, query={"cursor": "!!"})
    )
    assert bad_cursor["statusCode"] == 422


def test_recording_is_capped_per_plugin_per_minute_and_the_rest_still_counted(
    ingest: Invoke, aggregate: Invoke, query: Invoke, aws: Any, demo_config: Any
) -> None:
    for i in range(30):
        post(ingest, "/v1/track", {"userId": f"u{i}"})  # no event name: 422 each
    records = stored_rejections(aws)
    assert len(records) == 20  # the cap: later ones are counted, not written
    aggregate_stored_events(aws, aggregate)
    summary = body(
        query(api_event("GET", "/api/analytics/summary", headers=ADMIN, query={"chatbot_id": "demo-plugin"}))
    )
    assert summary["rejected"]["VALIDATION"] == 20  # the other 10 wait in memory for the next record


def test_storage_down_while_recording_does_not_change_the_answer(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    with dynamodb_fails(
        "PutItem", when=lambda p: "kind" in p["Item"] and p["Item"]["kind"]["S"] == "rejected"
    ):
        answer = post(ingest, "/v1/track", {"userId": "u"})
    assert answer["statusCode"] == 422


@pytest.mark.parametrize(
    ("path", "asked"),
    [
        # analytics.js retrying after a 503 or a 429
        ("/v1/t", "authorization,content-type,x-retry-count"),
        ("/v1/b", "authorization,content-type,x-retry-count"),
        # RudderStack's browser SDK, every call, and its retries
        ("/v1/track", "anonymousid,authorization,content-type,sentat"),
        (
            "/v1/page",
            "anonymousid,authorization,content-type,rsa-retry-attempt,rsa-since-last-attempt,sentat",
        ),
        ("/v1/identify", "anonymousid,content-type,rsa-recovered,rsa-retry-reason,rsa-since-first-attempt"),
    ],
)
def test_preflights_allow_the_headers_browser_sdks_send(ingest: Invoke, path: str, asked: str) -> None:
    # Given a browser's preflight for what the SDK is about to send
    headers = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": asked,
    }
    answer = ingest(api_event("OPTIONS", path, headers=headers))
    # Then every header it asks for is allowed, for any origin (the call itself checks the plugin's)
    assert answer["statusCode"] == 204
    allowed = answer["multiValueHeaders"]["Access-Control-Allow-Headers"][0]
    assert set(asked.split(",")) <= {name.strip().lower() for name in allowed.split(",")}
    assert answer["multiValueHeaders"]["Access-Control-Allow-Origin"][0] in ("*", "https://app.example.com")
    assert "POST" in answer["multiValueHeaders"]["Access-Control-Allow-Methods"][0]


def test_rudderstacks_beacon_batch_takes_its_write_key_from_the_query(
    ingest: Invoke, aws: Any, demo_config: Any
) -> None:
    # Given navigator.sendBeacon's request: text/plain, no Authorization, the write key in the query
    calls = [
        call("track", "beacon-1", userId="", anonymousId="anon-9"),
        call("page", "beacon-2", name="Home"),
    ]
    payload = {"batch": calls, "sentAt": "2025-11-24T20:00:00Z"}
    event = api_event("POST", "/beacon/v1/batch", payload, headers=BROWSER, query={"writeKey": WRITE_KEY})
    # When it is posted
    answer = ingest(event)
    # Then it is a batch like any other
    assert answer["statusCode"] == 200, answer["body"]
    assert body(answer) == {"success": True, "accepted": 2, "rejected": []}
    assert sorted(e["message_id"] for e in stored_events(aws)) == ["beacon-1", "beacon-2"]
    # And an unknown write key is refused as on every Segment route
    unknown = api_event(
        "POST", "/beacon/v1/batch", {"batch": calls}, headers=BROWSER, query={"writeKey": "wk_nobody_123"}
    )
    answer = ingest(unknown)
    assert (answer["statusCode"], body(answer)["code"]) == (401, "UNAUTHORIZED")
