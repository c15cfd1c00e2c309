"""A deletion leaves nothing of the person behind: not the calls a container accepted just after the
DELETE answer (before its cached config showed the suppression), whatever their dialect and however
they are keyed, and not the person's refused calls kept in the plugin's rejections."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import Invoke, Stream, body, new_container, readable, scan, stored_events

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}
PERSON = "victim-7"


@pytest.fixture(autouse=True)
def no_cache(function_env: Any) -> None:
    function_env(CONFIG_CACHE_SECONDS="0", RATE_LIMIT_PER_MINUTE="0")


def segment(ingest: Invoke, path: str, payload: dict[str, Any], status: int = 200) -> dict[str, Any]:
    answer = ingest(api_event("POST", path, payload, headers=BASIC))
    assert answer["statusCode"] == status, answer
    reply: dict[str, Any] = body(answer)
    return reply


def delete(query: Invoke, user_id: str) -> str:
    answer = query(api_event("DELETE", f"/v1/plugins/demo-plugin/users/{user_id}", headers=ADMIN))
    assert answer["statusCode"] == 202, answer
    deletion: str = body(answer)["deletion_id"]
    return deletion


def status(query: Invoke, deletion: str) -> str:
    answer = query(api_event("GET", f"/v1/plugins/demo-plugin/deletions/{deletion}", headers=ADMIN))
    found: str = body(answer)["status"]
    return found


def late_calls(ingest: Invoke) -> None:
    """What the person's clients send right after the DELETE: every dialect, named and unnamed ids."""
    segment(
        ingest,
        "/v1/track",
        {"event": "rating", "userId": PERSON, "messageId": "late-named", "properties": {"value": 1}},
    )
    segment(ingest, "/v1/track", {"event": "rating", "userId": PERSON, "properties": {"value": 2}})
    segment(ingest, "/v1/identify", {"userId": PERSON, "messageId": "late-identify", "traits": {"plan": "x"}})
    plugin = {"key": "handouts", "value": "late.pdf", "user_id": PERSON}
    assert ingest(api_event("POST", "/v1/plugins/demo-plugin/track", plugin))["statusCode"] == 200


def test_calls_accepted_just_after_a_suppressing_delete_do_not_outlive_it(
    query: Invoke, aws: Any, stream: Stream, demo_config: Any, function_env: Any
) -> None:
    # Given a container whose config cache (60 s) was filled before the deletion
    function_env(CONFIG_CACHE_SECONDS="60")
    stale = new_container("IngestFunction")
    segment(
        stale,
        "/v1/track",
        {"event": "rating", "userId": PERSON, "messageId": "before", "properties": {"value": 5}},
    )
    function_env(CONFIG_CACHE_SECONDS="0")
    stream.aggregate()
    # When the person is deleted (and suppressed), then their clients call through that container
    deletion = delete(query, PERSON)
    late_calls(stale)  # answered 200: that container does not know yet
    stream.aggregate()
    stream.forget_all()
    # Then the deletion is done and nothing the person sent, before or after the DELETE, is left
    assert status(query, deletion) == "done"
    assert [e for e in stored_events(aws) if PERSON in (e["user_id"], e.get("anonymous_id"))] == []
    answer = query(api_event("GET", f"/v1/plugins/demo-plugin/users/{PERSON}", headers=ADMIN))
    assert answer["statusCode"] == 404
    assert [item for item in scan(aws, "AggregatesTable") if PERSON in readable(item)] == []


def test_a_deletion_removes_the_persons_refused_calls_and_keeps_the_counts(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given refused calls of the person, alone and beside another person's in one batch
    segment(ingest, "/v1/track", {"event": "x" * 300, "userId": PERSON}, status=422)
    refused = {"type": "track", "event": "y" * 300, "userId": "bystander"}
    mine = {"type": "track", "event": "z" * 300, "anonymousId": PERSON}
    good = {"type": "track", "event": "rating", "userId": "bystander", "properties": {"value": 3}}
    segment(ingest, "/v1/batch", {"batch": [refused, mine, good]})
    plugin = {"key": "undeclared", "value": 1, "user_id": PERSON}
    assert ingest(api_event("POST", "/v1/plugins/demo-plugin/track", plugin))["statusCode"] == 422
    stream.aggregate()
    # When the person is deleted
    delete(query, PERSON)
    stream.aggregate()
    stream.forget_all()
    # Then no refused call of theirs is readable; the bystander's is, and the counts stay
    listed = body(query(api_event("GET", "/v1/plugins/demo-plugin/rejections", headers=ADMIN)))["rejections"]
    payloads = [entry["payload"] for entry in listed]
    assert not [p for p in payloads if PERSON in p]
    assert [p for p in payloads if "bystander" in p]
    summary = body(
        query(api_event("GET", "/api/analytics/summary", headers=ADMIN, query={"chatbot_id": "demo-plugin"}))
    )
    assert summary["rejected"]["VALIDATION"] == 4


def test_a_suppressed_persons_refused_calls_are_counted_and_keep_nothing_of_them(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given a deleted (and suppressed) person
    segment(ingest, "/v1/track", {"event": "rating", "userId": PERSON, "properties": {"value": 1}})
    stream.aggregate()
    delete(query, PERSON)
    stream.forget_all()
    # When their client sends a call the contract refuses, alone and in a batch
    segment(ingest, "/v1/track", {"event": "x" * 300, "userId": PERSON, "messageId": "m-late"}, status=422)
    batch = [
        {"type": "track", "event": "y" * 300, "anonymousId": PERSON},
        {"type": "nope", "userId": "other"},
    ]
    segment(ingest, "/v1/batch", {"batch": batch}, status=422)
    stream.aggregate()
    # Then each refusal is listed and counted, with nothing of the person kept
    listed = body(query(api_event("GET", "/v1/plugins/demo-plugin/rejections", headers=ADMIN)))["rejections"]
    assert len(listed) == 3
    assert [entry for entry in listed if PERSON in json.dumps(entry) or "m-late" in json.dumps(entry)] == []
    assert [entry for entry in listed if "other" in entry["payload"]]  # the bystander's call is kept
