"""The live view through the functions on moto: a call ingested and its stream batch aggregated is
listed by ``GET /v1/plugins/{p}/events/recent``, newest first, as a user's access export shows it;
limits are checked, other plugins' keys refused, a forgotten person's events not shown."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import SAMPLE_ADMIN_KEY, sample_event
from tests.helpers import api_event
from tests.integration.conftest import Invoke, aggregate_stored_events, body

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
RECENT = "/v1/plugins/demo-plugin/events/recent"


def track(ingest: Invoke, user: str, value: str) -> None:
    call = sample_event("plugin-track")
    call["body"] = json.dumps({"key": "emoji-reactions", "value": value, "user_id": user})
    assert ingest(call)["statusCode"] == 200


def test_stored_calls_show_newest_first_as_exported(
    aws: Any, ingest: Invoke, aggregate: Invoke, query: Invoke, demo_config: Any
) -> None:
    assert body(query(sample_event("recent-events-get")))["events"] == []  # nothing yet
    for n, value in enumerate(("😍", "😱", "👍")):
        track(ingest, f"participant-{n}", value)
    aggregate_stored_events(aws, aggregate)
    answer = query(api_event("GET", RECENT, headers=ADMIN, query={"limit": "2"}))
    assert answer["statusCode"] == 200
    events = body(answer)["events"]
    assert [(e["user_id"], e["value"]) for e in events] == [("participant-2", "👍"), ("participant-1", "😱")]
    assert {"event_id", "key", "received_at", "event_time", "context", "dialect"} <= set(events[0])
    assert [e["value"] for e in body(query(sample_event("recent-events-get")))["events"]] == [
        "👍",
        "😱",
        "😍",
    ]
    # A forgotten person's events are not shown, though their ring still holds them a while.
    deleted = query(api_event("DELETE", "/v1/plugins/demo-plugin/users/participant-2", headers=ADMIN))
    assert deleted["statusCode"] in (200, 202), deleted["body"]
    assert [e["user_id"] for e in body(query(sample_event("recent-events-get")))["events"]] == [
        "participant-1",
        "participant-0",
    ]


def test_the_limit_and_the_key_are_checked(query: Invoke, demo_config: Any) -> None:
    for limit in ("0", "201", "ten"):
        answer = query(api_event("GET", RECENT, headers=ADMIN, query={"limit": limit}))
        assert answer["statusCode"] == 422
    assert query(api_event("GET", RECENT))["statusCode"] == 401
    assert (
        query(api_event("GET", "/v1/plugins/nobody-here/events/recent", headers=ADMIN))["statusCode"] == 404
    )
