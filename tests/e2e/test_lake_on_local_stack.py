"""The lake on ``make run``: calls of the three dialects (a duplicate messageId and a refused call among
them) reach ``.local/lake/`` as Parquet within LAKE_FLUSH_SECONDS, partitioned by plugin and day; the
lake holds each stored event once and nothing refused, and ``tracking-local sql`` answers over it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.e2e.conftest import Stack, eventually

pytestmark = pytest.mark.e2e

PLUGIN = "lake-plugin"
CHATBOT = "lake-bot"
CONFIG = {
    "tracking": {
        "events": [
            {"key": "rating", "name": {"en": "Rating"}, "aggregations": ["average"], "value_type": "number"}
        ]
    },
    "write_keys": ["wk_lake_000001"],
}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_lake_000001:").decode()}


def sql(stack: Stack, statement: str) -> list[dict[str, str]]:
    """``tracking-local sql``'s answer, as the user reads it: a header, then tab-separated rows."""
    header, *lines = stack.cli("sql", statement).splitlines()
    names = header.split("\t")
    return [dict(zip(names, line.split("\t"), strict=True)) for line in lines]


def post(stack: Stack, path: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    reply = stack.request("POST", path, payload, headers=headers)
    assert reply.status == 200, reply.raw
    return reply.json


def test_stored_events_of_every_dialect_reach_the_lake_once(stack: Stack) -> None:
    assert stack.admin("PUT", f"/v1/plugins/{PLUGIN}/config", CONFIG).status == 200
    track = {
        "type": "track",
        "event": "rating",
        "userId": "u-1",
        "messageId": "lake-m-1",
        "properties": {"value": 4, "popup_version": "b"},
    }
    page = {
        "type": "page",
        "anonymousId": "a-1",
        "messageId": "lake-m-2",
        "context": {
            "page": {"url": "https://shop.test/?utm_source=ignored", "referrer": "https://ref.test/"},
            "campaign": {"source": "newsletter", "medium": "email", "name": "winter"},
        },
    }
    refused = {"type": "track", "event": "x" * 300, "userId": "u-2", "messageId": "lake-m-3"}
    answer = post(stack, "/v1/batch", {"batch": [track, page, refused]}, BASIC)
    assert [r["messageId"] for r in answer["rejected"]] == ["lake-m-3"]
    post(stack, "/v1/track", track, BASIC)  # the same messageId again: counted and stored once
    post(stack, f"/v1/plugins/{PLUGIN}/track", {"key": "rating", "value": 5, "user_id": "p-1"})
    widget = {
        "event": "visitor",
        "token": "user_abc123def450",
        "data": {"chatbot_id": CHATBOT, "url": "https://bot.test/?utm_source=google"},
    }
    post(stack, "/api/analytics/track", widget)
    # a crawler's visit is stored like any (flagged as a bot once the service flags bots: issue 26)
    crawler = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    post(stack, "/api/analytics/track", {**widget, "token": "user_crawler_0001"}, crawler)
    stored = {event["event_id"] for event in stack.stored()}
    assert len(stored) == 5

    def in_lake() -> list[dict[str, str]] | None:
        rows = sql(
            stack, "SELECT plugin_id, day, event_id, dialect, type, name FROM events ORDER BY event_id"
        )
        return rows if len(rows) >= len(stored) else None

    rows = eventually(in_lake, timeout_s=60)
    # Then the lake holds each stored event once, and nothing refused
    assert sorted(row["event_id"] for row in rows) == sorted(stored)
    assert {(row["plugin_id"], row["dialect"], row["type"]) for row in rows} == {
        (PLUGIN, "segment", "track"),
        (PLUGIN, "segment", "page"),
        (PLUGIN, "plugin", "track"),
        (CHATBOT, "widget", "track"),
    }
    files = sorted(stack.state_dir.glob("lake/events/plugin_id=*/day=*/*.parquet"))
    assert {path.parent.parent.name for path in files} == {f"plugin_id={PLUGIN}", f"plugin_id={CHATBOT}"}
    # And the columns a question needs are there: where they came from, what they said
    (campaign,) = sql(stack, "SELECT utm_source, utm_campaign, referrer FROM events WHERE type = 'page'")
    assert campaign == {"utm_source": "newsletter", "utm_campaign": "winter", "referrer": "https://ref.test/"}
    versions = sql(
        stack,
        "SELECT json_extract_scalar(properties, '$.popup_version') AS version, count(*) AS n "
        f"FROM events WHERE plugin_id = '{PLUGIN}' AND name = 'rating' GROUP BY 1 ORDER BY 1",
    )
    assert versions == [{"version": "b", "n": "1"}, {"version": "", "n": "1"}]
    # And the lake's routes answer from it, for a key of the plugin only
    day = rows[0]["day"]
    span = f"from={day}&to={day}"
    reply = stack.admin(
        "GET", f"/v1/plugins/{PLUGIN}/breakdown?event=rating&by=properties.popup_version&{span}"
    )
    assert reply.status == 200, reply.raw
    assert reply.json["rows"] == [
        {"value": "b", "events": 1, "users": 1},
        {"value": None, "events": 1, "users": 1},
    ]
    reply = stack.admin("GET", f"/v1/plugins/{PLUGIN}/retention?{span}")
    assert reply.status == 200, reply.raw
    assert reply.json["cohorts"] == [{"start": day, "users": 3, "returned": [3]}]
    refused = stack.admin("GET", f"/v1/plugins/{PLUGIN}/breakdown?event=rating&by=ip")
    assert refused.status == 422
    key = stack.admin("POST", f"/v1/plugins/{CHATBOT}/keys", {"label": "other"}).json["key"]
    other = stack.request(
        "GET", f"/v1/plugins/{PLUGIN}/breakdown?event=rating&by=type", headers={"x-api-key": key}
    )
    assert other.status == 403


def test_a_deleted_person_leaves_the_lake_before_the_deletion_is_done(stack: Stack) -> None:
    assert stack.admin("PUT", f"/v1/plugins/{PLUGIN}/config", CONFIG).status == 200
    calls = [
        {"type": "track", "event": "rating", "userId": "gone", "properties": {"value": 1}},
        {"type": "identify", "userId": "gone", "anonymousId": "gone-anon", "traits": {"plan": "x"}},
        {"type": "page", "anonymousId": "gone-anon"},
        {"type": "track", "event": "rating", "userId": "stays", "properties": {"value": 5}},
    ]
    post(stack, "/v1/batch", {"batch": calls}, BASIC)
    mine = "SELECT count(*) AS n FROM events WHERE user_id IN ('gone', 'gone-anon')"
    eventually(lambda: sql(stack, mine)[0]["n"] == "3" or None, timeout_s=60)
    eventually(lambda: stack.admin("GET", f"/v1/plugins/{PLUGIN}/users/gone").status == 200 or None)
    deletion = stack.admin("DELETE", f"/v1/plugins/{PLUGIN}/users/gone").json["deletion_id"]

    def done() -> dict[str, Any] | None:
        reply = stack.admin("GET", f"/v1/plugins/{PLUGIN}/deletions/{deletion}").json
        return reply if reply["status"] == "done" else None

    finished = eventually(done, timeout_s=90)
    assert finished["removed"]["lake_rows"] == 3
    assert sql(stack, mine) == [{"n": "0"}]
    assert sql(stack, "SELECT count(*) AS n FROM events WHERE user_id = 'stays'") == [{"n": "1"}]
