"""Aggregates over HTTP on the local stack: the stream poller feeds the aggregate function."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Reply, Stack, eventually
from tracking.keys import event_pk

pytestmark = pytest.mark.e2e

CONFIG = {
    "tracking": {
        "events": [
            {
                "key": "emoji",
                "name": {"en": "Emoji"},
                "aggregations": ["group_array", "increment"],
                "value_type": "string",
            },
            {"key": "test", "name": {"en": "Test"}, "aggregations": ["increment"]},
            {"key": "fruit", "name": {"en": "Fruit"}, "aggregations": ["array", "increment"]},
            {"key": "score", "name": {"en": "Score"}, "aggregations": ["average"], "value_type": "number"},
            {"key": "name", "name": {"en": "Name"}, "aggregations": ["string"], "value_type": "string"},
        ]
    }
}


def track(stack: Stack, plugin: str, user: str, key: str, value: Any = None) -> None:
    payload: dict[str, Any] = {"key": key, "user_id": user}
    if value is not None:
        payload["value"] = value
    assert stack.request("POST", f"/v1/plugins/{plugin}/track", payload).status == 200


def user_row(stack: Stack, plugin: str, user: str) -> Reply:
    return stack.admin("GET", f"/v1/plugins/{plugin}/users/{user}")


def test_the_issues_examples_read_back_over_http(stack: Stack) -> None:
    assert stack.admin("PUT", "/v1/plugins/agg-plugin/config", CONFIG).status == 200
    for _ in range(7):
        track(stack, "agg-plugin", "u1", "emoji", "😍")
    for _ in range(2):
        track(stack, "agg-plugin", "u1", "emoji", "😱")
    for _ in range(2):
        track(stack, "agg-plugin", "u1", "test")
    for fruit in ("apples", "oranges"):
        track(stack, "agg-plugin", "u1", "fruit", fruit)
    for score in (10, 5):
        track(stack, "agg-plugin", "u1", "score", score)
    for name in ("Michael", "John"):
        track(stack, "agg-plugin", "u1", "name", name)

    def complete() -> dict[str, Any] | None:
        reply = user_row(stack, "agg-plugin", "u1")
        values = reply.json.get("values", {}) if reply.status == 200 else {}
        done = (
            values.get("emoji", {}).get("value", {}).get("total") == 9
            and values.get("name", {}).get("value") == "John"
        )
        return values if done and len(values) == 5 else None

    values = eventually(complete)
    assert values == {
        "emoji": {"value": {"total": 9, "counts": {"😍": 7, "😱": 2}}, "display": "9 (😍 7, 😱 2)"},
        "test": {"value": 2, "display": "2"},
        "fruit": {"value": ["apples", "oranges"], "display": "apples, oranges"},
        "score": {"value": 7.5, "display": "7.5"},
        "name": {"value": "John", "display": "John"},
    }


def test_a_poison_record_goes_to_the_on_failure_file_without_blocking_the_ones_behind_it(
    stack: Stack,
) -> None:
    assert stack.admin("PUT", "/v1/plugins/poison-plugin/config", CONFIG).status == 200
    dynamodb = stack.database().client()
    # An item no canonical event can be read from, written straight into the events table.
    dynamodb.put_item(
        TableName="EventsTable",
        Item={"pk": {"S": event_pk("poison-plugin", "u9")}, "sk": {"S": "g:poison"}, "kind": {"S": "track"}},
    )
    track(stack, "poison-plugin", "u9", "test")
    row = eventually(lambda: user_row(stack, "poison-plugin", "u9").status == 200)
    assert row, "the event behind the poison record was never aggregated"
    failures = stack.state_dir / "on-failure.jsonl"
    messages = eventually(lambda: failures.exists() and failures.read_text().splitlines())
    info = json.loads(messages[0])["DDBStreamBatchInfo"]
    assert info["shardId"].startswith("shardId-")
    assert info["batchSize"] >= 1
    assert user_row(stack, "poison-plugin", "u9").json["values"]["test"]["value"] == 1
