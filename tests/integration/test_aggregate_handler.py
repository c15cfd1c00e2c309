"""The aggregate function on moto: stream batches in, aggregates, rollups and partial failures out."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import Invoke, body
from tests.integration.faults import dynamodb_fails
from tests.streams import canonical, invocation, stream_record
from tracking.aggregate.stream import MissingShardId
from tracking.keys import (
    AB_CONVERSIONS_KEY,
    AB_USERS_KEY,
    aggregate_sk,
    event_pk,
    funnel_key,
    is_aggregates_pk,
    rollup_pk,
)
from tracking.storage.dynamo import client

CONFIG = {
    "tracking": {
        "events": [
            {"key": "emoji", "name": {"en": "Emoji"}, "aggregations": ["group_array", "increment"]},
            {"key": "fruit", "name": {"en": "Fruit"}, "aggregations": ["array"]},
            {
                "key": "score",
                "name": {"en": "Score", "fr": "Note"},
                "aggregations": ["average", "array"],
                "value_type": "number",
            },
            {"key": "name", "name": {"en": "Name"}, "aggregations": ["string"]},
            {"key": "test", "name": {"en": "Test"}, "aggregations": ["increment"]},
        ]
    }
}


@pytest.fixture
def published(query: Invoke) -> None:
    assert (
        query(api_event("PUT", "/v1/plugins/p1/config", CONFIG, headers={"x-api-key": SAMPLE_ADMIN_KEY}))[
            "statusCode"
        ]
        == 200
    )


def row(query: Invoke, user: str = "u1", params: str = "") -> dict[str, Any]:
    event = api_event("GET", f"/v1/plugins/p1/users/{user}", headers={"x-api-key": SAMPLE_ADMIN_KEY})
    if params:
        name, value = params.split("=")
        event["queryStringParameters"] = {name: value}
    answer = query(event)
    return {"status": answer["statusCode"], **(body(answer) or {})}


@pytest.fixture
def writes() -> Iterator[Counter[tuple[str, str]]]:
    """Counts the aggregates table's item writes, per item."""
    counted: Counter[tuple[str, str]] = Counter()

    def count(params: dict[str, Any], **_: Any) -> None:
        if params["TableName"] == "AggregatesTable":
            key = params["Item"] if "Item" in params else params["Key"]  # a put, or an update
            counted[(key["pk"]["S"], key["sk"]["S"])] += 1

    for operation in ("PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems"):
        client().meta.events.register(f"before-parameter-build.dynamodb.{operation}", count)
    yield counted
    for operation in ("PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems"):
        client().meta.events.unregister(f"before-parameter-build.dynamodb.{operation}", count)


def test_the_contracts_value_shapes(aggregate: Invoke, query: Invoke, published: None) -> None:
    events = (
        [canonical("emoji", "😍", event_id=f"g:e{i}") for i in range(7)]
        + [canonical("emoji", "😱", event_id=f"g:f{i}") for i in range(2)]
        + [canonical("test", event_id="g:t1"), canonical("test", event_id="g:t2")]
        + [canonical("fruit", "apples", event_id="g:a1"), canonical("fruit", "oranges", event_id="g:a2")]
        + [canonical("score", Decimal(10), event_id="g:s1"), canonical("score", Decimal(5), event_id="g:s2")]
        + [
            canonical("name", "Michael", at=1_764_016_800_000),
            canonical("name", "John", at=1_764_016_800_001),
        ]
    )
    answer = aggregate(invocation("shard-1", [stream_record(i + 1, e) for i, e in enumerate(events)]))
    assert answer == {"batchItemFailures": [], "state": {}}
    assert row(query)["values"] == {
        "emoji": {"value": {"total": 9, "counts": {"😍": 7, "😱": 2}}, "display": "9 (😍 7, 😱 2)"},
        "test": {"value": 2, "display": "2"},
        "fruit": {"value": ["apples", "oranges"], "display": "apples, oranges"},
        "score": {"value": 7.5, "display": "7.5"},
        "name": {"value": "John", "display": "John"},
    }
    assert row(query, params="aggregation.score=array")["values"]["score"] == {
        "value": [10, 5],
        "display": "10, 5",
    }
    assert row(query, params="aggregation.emoji=increment")["values"]["emoji"] == {"value": 9, "display": "9"}


def test_one_write_per_group_per_batch(
    aggregate: Invoke, published: None, writes: Counter[tuple[str, str]]
) -> None:
    events = [canonical("emoji", "😍", user=f"u{i % 3}", event_id=f"g:{i}") for i in range(30)]
    events += [canonical("test", user=f"u{i % 3}", event_id=f"g:t{i}") for i in range(30)]
    aggregate(invocation("shard-1", [stream_record(i + 1, e) for i, e in enumerate(events)]))
    aggregates = {item: n for item, n in writes.items() if is_aggregates_pk(item[0])}
    rollups = {item: n for item, n in writes.items() if item[0] == rollup_pk("p1", "shard-1")}
    assert len(aggregates) == 6  # 3 users x 2 keys
    assert set(aggregates.values()) == {1}
    assert len(rollups) == 2  # 1 day x 2 keys x 1 group, this shard
    assert set(rollups.values()) == {1}


def test_modify_and_remove_records_change_nothing(aggregate: Invoke, query: Invoke, published: None) -> None:
    stored = canonical("test", event_id="g:1")
    aggregate(invocation("shard-1", [stream_record(1, stored)]))
    answer = aggregate(
        invocation("shard-1", [stream_record(2, stored, "MODIFY"), stream_record(3, stored, "REMOVE")])
    )
    assert answer["batchItemFailures"] == []
    assert row(query)["values"]["test"]["value"] == 1


def test_a_redelivered_batch_counts_once(aggregate: Invoke, query: Invoke, published: None) -> None:
    batch = invocation(
        "shard-1", [stream_record(i, canonical("test", event_id=f"g:{i}")) for i in range(1, 6)]
    )
    aggregate(batch)
    aggregate(batch)
    assert row(query)["values"]["test"]["value"] == 5


def rollup_counts(aws: Any) -> dict[str, int]:
    items = aws.query(
        TableName="AggregatesTable",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": rollup_pk("p1", "shard-1")}},
    )["Items"]
    return {item["key"]["S"]: int(item["count"]["N"]) for item in items}


def test_a_failed_group_is_reported_and_the_rest_applied_exactly_once_on_retry(
    aggregate: Invoke, query: Invoke, aws: Any, published: None
) -> None:
    events = [
        canonical("test", user="u2", event_id="g:1"),
        canonical("test", event_id="g:2"),
        canonical("test", user="u2", event_id="g:3"),
    ]
    batch = invocation("shard-1", [stream_record(i + 1, e) for i, e in enumerate(events)])

    def u1_aggregate(params: dict[str, Any]) -> bool:
        return bool(params["Item"]["sk"]["S"] == aggregate_sk("u1", "test"))

    with dynamodb_fails("PutItem", when=u1_aggregate):
        answer = aggregate(batch)
    # u1's record failed; u2's last record is held back from the shared rollup behind it.
    assert answer["batchItemFailures"] == [{"itemIdentifier": f"{2:021d}"}, {"itemIdentifier": f"{3:021d}"}]
    assert row(query, "u2")["values"]["test"]["value"] == 2
    assert row(query)["status"] == 404
    assert rollup_counts(aws) == {"test": 1}
    # Lambda retries from the lowest failed record.
    retry = invocation("shard-1", [stream_record(i + 2, e) for i, e in enumerate(events[1:])])
    assert aggregate(retry)["batchItemFailures"] == []
    assert (row(query)["values"]["test"]["value"], row(query, "u2")["values"]["test"]["value"]) == (1, 2)
    assert rollup_counts(aws) == {"test": 3}


def test_when_every_record_fails_lambda_is_told_to_bisect(aggregate: Invoke, published: None) -> None:
    batch = invocation("shard-1", [stream_record(1, canonical("test", event_id="g:1"))])
    with dynamodb_fails("BatchGetItem"), pytest.raises(BatchProcessingError):
        aggregate(batch)


def test_a_poison_record_fails_alone(aggregate: Invoke, query: Invoke, published: None) -> None:
    poison = stream_record(
        2, None, image={"pk": {"S": event_pk("p1", "u1")}, "sk": {"S": "g:bad"}, "kind": {"S": "track"}}
    )
    batch = invocation(
        "shard-1",
        [
            stream_record(1, canonical("test", event_id="g:1")),
            poison,
            stream_record(3, canonical("test", event_id="g:3")),
        ],
    )
    answer = aggregate(batch)
    assert answer["batchItemFailures"] == [{"itemIdentifier": f"{2:021d}"}]
    assert row(query)["values"]["test"]["value"] == 2


def test_without_a_shard_id_the_function_refuses_to_guess(aggregate: Invoke) -> None:
    event = invocation("shard-1", [stream_record(1, canonical("test"))])
    del event["shardId"]
    with pytest.raises(MissingShardId):
        aggregate(event)


def test_the_final_invocation_of_a_window_may_carry_no_records(aggregate: Invoke) -> None:
    event = invocation("shard-1", [])
    event["isFinalInvokeForWindow"] = True
    assert aggregate(event) == {"batchItemFailures": [], "state": {}}


def test_one_users_events_on_two_shards_both_count(aggregate: Invoke, query: Invoke, published: None) -> None:
    aggregate(invocation("parent", [stream_record(500, canonical("test", event_id="g:1"))]))
    aggregate(invocation("child", [stream_record(3, canonical("test", event_id="g:2"))]))  # lower numbers
    aggregate(invocation("parent", [stream_record(500, canonical("test", event_id="g:1"))]))  # a redelivery
    assert row(query)["values"]["test"]["value"] == 2


def test_rollups_per_day_key_and_group(aggregate: Invoke, aws: Any, published: None) -> None:
    day = 1_764_016_800_000  # 2025-11-24
    events = [
        canonical(
            "purchase",
            user="a",
            ab_group="control",
            commerce="purchase",
            total_value_base=Decimal("91.98"),
            event_id="g:1",
            at=day,
        ),
        canonical(
            "purchase",
            user="a",
            ab_group="control",
            commerce="purchase",
            total_value_base=Decimal("8.02"),
            event_id="g:2",
            at=day,
        ),
        canonical(
            "purchase",
            user="b",
            ab_group="test",
            commerce="purchase",
            total_value_base=None,
            event_id="g:3",
            at=day,
        ),
        canonical("visitor", user="a", ab_group="control", event_id="g:4", at=day + 86_400_000),
    ]
    aggregate(invocation("shard-1", [stream_record(i + 1, e) for i, e in enumerate(events)]))
    items = aws.query(
        TableName="AggregatesTable",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": rollup_pk("p1", "shard-1")}},
    )["Items"]
    rollups = {
        (i["day"]["S"], i["key"]["S"], i["ab_group"]["S"]): (
            int(i["count"]["N"]),
            int(i["users"]["N"]),
            Decimal(i["revenue"]["N"]),
        )
        for i in items
    }
    assert rollups == {
        ("2025-11-24", "purchase", "control"): (2, 1, Decimal("100.00")),
        ("2025-11-24", "purchase", "test"): (1, 1, Decimal(0)),
        ("2025-11-25", "visitor", "control"): (1, 1, Decimal(0)),
        # the ordered funnel: one user entered it (visitor) that day; the buyers never visited
        ("2025-11-25", funnel_key(1), "none"): (0, 1, Decimal(0)),
        # the A/B groups: each user on the day of their first event that named a group, with their
        # net revenue; both bought
        ("2025-11-24", AB_USERS_KEY, "control"): (0, 1, Decimal("100.00")),
        ("2025-11-24", AB_CONVERSIONS_KEY, "control"): (0, 1, Decimal(0)),
        ("2025-11-24", AB_USERS_KEY, "test"): (0, 1, Decimal(0)),
        ("2025-11-24", AB_CONVERSIONS_KEY, "test"): (0, 1, Decimal(0)),
    }


def test_publishing_delete_existing_events_resets_that_key_only(
    aggregate: Invoke, query: Invoke, aws: Any, published: None
) -> None:
    old = int(time.time() * 1000) - 60_000
    aggregate(
        invocation(
            "s",
            [
                stream_record(1, canonical("emoji", "😍", received=old, event_id="g:1")),
                stream_record(2, canonical("test", received=old, event_id="g:2")),
            ],
        )
    )
    config = json.loads(json.dumps(CONFIG))
    config["tracking"]["events"][0]["delete_existing_events"] = True
    assert (
        query(api_event("PUT", "/v1/plugins/p1/config", config, headers={"x-api-key": SAMPLE_ADMIN_KEY}))[
            "statusCode"
        ]
        == 200
    )
    assert set(row(query)["values"]) == {"test"}
    # An event received before the publish but aggregated after it does not count either.
    aggregate(invocation("s", [stream_record(3, canonical("emoji", "😱", received=old + 1, event_id="g:3"))]))
    assert set(row(query)["values"]) == {"test"}
    now = int(time.time() * 1000) + 1_000
    aggregate(invocation("s", [stream_record(4, canonical("emoji", "🎉", received=now, event_id="g:4"))]))
    values = row(query)["values"]
    assert values["emoji"]["value"] == {"total": 1, "counts": {"🎉": 1}}
    assert values["test"]["value"] == 1


def test_users_route_errors(query: Invoke, published: None) -> None:
    assert row(query, "nobody")["status"] == 404
    unknown = query(api_event("GET", "/v1/plugins/none/users/u1", headers={"x-api-key": SAMPLE_ADMIN_KEY}))
    assert unknown["statusCode"] == 404
    bad = row(query, params="aggregation.emoji=average")
    assert (bad["status"], bad["error"]["details"][0]["field"]) == (422, "aggregation.emoji")
    assert query(api_event("GET", "/v1/plugins/p1/users/u1"))["statusCode"] == 401
