"""What people cost: the writes a link adds, and a deletion's reads and writes per event it removes,
through the real functions on DynamoDB Local (each in this process, as in ``workloads``)."""

from __future__ import annotations

import json
import time
from typing import Any

from devstack.bench.harness import ADMIN, Function, environment_of
from devstack.local import dynamodb
from devstack.local.builders import api_event, canonical, invocation, stream_record
from devstack.local.capacity import metered
from tracking.keys import USER_SUFFIXES, aggregate_pk, aggregates_pk, deletions_pk, live_pks, user_prefix
from tracking.models.canonical import CanonicalEvent
from tracking.storage.aggregates import AggregateStore
from tracking.storage.dynamo import client
from tracking.storage.events import event_to_item

PLUGIN = "bench-people"
CONFIG = {
    "tracking": {
        "events": [
            {"key": key, "name": {"en": key}, "aggregations": ["increment", "array"]}
            for key in ("page-view", "click", "rating")
        ]
    }
}
START = 1_764_016_800_000


class _Stream:
    """Stream records for items as the events table's stream would carry them, numbered in order."""

    def __init__(self) -> None:
        self.seq = 0

    def records(self, events: list[CanonicalEvent]) -> list[dict[str, Any]]:
        records = []
        for event in events:
            self.seq += 1
            records.append(stream_record(self.seq, None, image=event_to_item(event, START // 1000 + 86_400)))
        return records


def _publish(database: dynamodb.Database) -> None:
    with environment_of("QueryFunction", database):
        put = api_event("PUT", f"/v1/plugins/{PLUGIN}/config", CONFIG, headers=ADMIN)
        assert Function("QueryFunction")(put)["statusCode"] == 200


def link_cost(database: dynamodb.Database, visitors: int) -> dict[str, Any]:
    """Anonymous visitors with 1 to 3 aggregates each identify with traits; so do as many users with no
    anonymous id. The aggregate function's writes for the linking identifies, less those for the plain
    ones, are what linking adds."""
    _publish(database)
    stream = _Stream()
    keys = ["page-view", "click", "rating"]
    activity: list[CanonicalEvent] = []
    aggregates = 0
    for n in range(visitors):
        for key in keys[: 1 + n % 3]:
            aggregates += 1
            # As a visitor's SDK sends it before identify: the anonymous id alone.
            anonymous = f"anon-{n:05d}"
            activity.append(
                canonical(
                    key,
                    "x",
                    user=anonymous,
                    plugin=PLUGIN,
                    at=START + n,
                    dialect="segment",
                    anonymous_id=anonymous,
                )
            )

    def identify(user: str, anonymous: str | None, n: int) -> CanonicalEvent:
        extra = {"anonymous_id": anonymous} if anonymous else {}
        return canonical(
            "identify",
            user=user,
            plugin=PLUGIN,
            at=START + 10_000 + n,
            kind="identify",
            dialect="segment",
            traits={"plan": "pro"},
            event_id=f"m:identify-{user}",
            **extra,
        )

    linking = [identify(f"user-{n:05d}", f"anon-{n:05d}", n) for n in range(visitors)]
    plain = [identify(f"other-{n:05d}", None, n) for n in range(visitors)]
    with environment_of("AggregateFunction", database):
        aggregate = Function("AggregateFunction")

        def deliver(events: list[CanonicalEvent]) -> float:
            with metered(client()) as usage:
                records = stream.records(events)
                for start in range(0, len(records), 100):
                    answer = aggregate(invocation("shard-people", records[start : start + 100]))
                    assert answer["batchItemFailures"] == [], answer
            # The live view's rings are written once per batch, whatever the batch holds: not a link's.
            rings = sum(units for pk, units in usage.units_by_pk.items() if pk in live_pks(PLUGIN))
            return usage.total_writes() - rings

        # A plugin that has been running lists every key suffix already: what is compared is the
        # links' writes, not the listing of the suffixes their first items fill.
        every = [aggregates_pk(PLUGIN, n) for n in range(USER_SUFFIXES)]
        AggregateStore(client(), "AggregatesTable").record_suffixes_of({"pk": {"S": pk}} for pk in every)
        deliver(activity)
        deliver(plain[:1])  # the plugin's trait names registered once, outside what is compared
        with_link = deliver(linking)
        without = deliver(plain[1:])
    extra = with_link / visitors - without / max(1, visitors - 1)
    return {
        "visitors": visitors,
        "anonymous_aggregates": aggregates,
        "writes_per_linking_identify": round(with_link / visitors, 3),
        "writes_per_plain_identify": round(without / max(1, visitors - 1), 3),
        "extra_writes_per_link": round(extra, 3),
        "extra_writes_per_anonymous_aggregate": round(extra * visitors / aggregates, 3),
    }


def deletion_cost(database: dynamodb.Database, events: int) -> dict[str, Any]:
    """A user with ``events`` stored events (half named by the client, half by this service, as a
    Segment source and a widget send them), aggregated, then deleted through the API and the forget
    function: reads and writes per removed event, steps and time."""
    _publish(database)
    user = "heavy-user"
    stored = [
        canonical(
            ("page-view", "click", "rating")[n % 3],
            "x",
            user=user,
            plugin=PLUGIN,
            at=START + n,
            event_id=f"m:msg-{n:07d}" if n % 2 else f"g:{START + n:011x}{n:016x}",
        )
        for n in range(events)
    ]
    with environment_of("IngestFunction", database):
        db = client()
        items = [{"PutRequest": {"Item": event_to_item(event, START // 1000 + 86_400)}} for event in stored]
        for start in range(0, len(items), 25):
            db.batch_write_item(RequestItems={"EventsTable": items[start : start + 25]})
    stream = _Stream()
    with environment_of("AggregateFunction", database):
        aggregate = Function("AggregateFunction")
        records = stream.records(stored)
        for start in range(0, len(records), 100):
            assert (
                aggregate(invocation("shard-people", records[start : start + 100]))["batchItemFailures"] == []
            )
    with environment_of("QueryFunction", database):
        query = Function("QueryFunction")
        answer = query(
            api_event(
                "DELETE", f"/v1/plugins/{PLUGIN}/users/{user}", headers=ADMIN, query={"suppress": "false"}
            )
        )
        assert answer["statusCode"] == 202, answer
        deletion_id = json.loads(answer["body"])["deletion_id"]
    steps = 0
    started = time.perf_counter()
    watcher = database.client()  # the bench's own reads of the latest step are not the deletion's
    with environment_of("ForgetFunction", database):
        forget = Function("ForgetFunction")
        with metered(client()) as usage:
            while True:
                latest = watcher.query(
                    TableName="EventsTable",
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": {"S": deletions_pk(PLUGIN)}},
                    ScanIndexForward=False,
                    Limit=1,
                    ConsistentRead=True,
                )["Items"][0]
                if latest["phase"]["S"] == "done":
                    break
                record = {
                    "eventName": "INSERT",
                    "dynamodb": {"SequenceNumber": str(steps + 1), "NewImage": latest},
                }
                assert forget({"Records": [record]}) == {"batchItemFailures": []}
                steps += 1
    seconds = time.perf_counter() - started
    removed = int(latest["removed_events"]["N"])
    assert removed == events, (removed, events)
    left = watcher.query(
        TableName="AggregatesTable",
        KeyConditionExpression="pk = :pk AND begins_with(sk, :user)",
        ExpressionAttributeValues={
            ":pk": {"S": aggregate_pk(PLUGIN, user)},
            ":user": {"S": user_prefix(user)},
        },
    )["Count"]
    assert left == 0
    reads = usage.total_reads()
    return {
        "events": events,
        "deletion_id": deletion_id,
        "steps": steps,
        "seconds": round(seconds, 1),
        "events_per_s": round(events / seconds),
        "write_units_per_event": round(usage.total_writes() / events, 4),
        "read_units_per_event": round(reads / events, 4),
        "requests": dict(usage.requests),
    }
