"""The aggregator measured: its logic alone (storage stubbed out), and its writes per group through
the real function on DynamoDB Local."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from devstack.bench.harness import ADMIN, Function, environment_of
from devstack.local import dynamodb
from devstack.local.builders import api_event, canonical, invocation, stream_record
from devstack.local.capacity import metered
from tracking.aggregate.aggregator import Aggregator
from tracking.aggregate.stream import decode
from tracking.keys import is_aggregates_pk
from tracking.models.canonical import CanonicalEvent
from tracking.models.config import PluginConfig, PublishedConfig
from tracking.models.people import NO_PEOPLE_LISTS, PeopleLists
from tracking.storage.dynamo import client


def plugin_events(count: int, users: int, seed: int) -> list[CanonicalEvent]:
    """Plugin events of ``users`` participants over four keys, one value type each."""
    rng = random.Random(seed)  # noqa: S311 - workload, not a secret
    keys: dict[str, list[Any]] = {
        "emoji": ["😍", "👏", "🎉"],
        "handouts": ["slides.pdf", "notes.pdf"],
        "rating": [Decimal(n) for n in range(1, 6)],
        "name": ["Ana", "Bo"],
    }
    now = int(time.time() * 1000)
    events = []
    for n in range(count):
        key = rng.choice(sorted(keys))
        events.append(
            canonical(
                key,
                rng.choice(keys[key]),
                user=f"user-{rng.randrange(users):05d}",
                plugin="bench-plugin",
                at=now + n,
                event_id=f"g:{now:011x}{n:020x}",
            )
        )
    return events


def stream_records(events: list[CanonicalEvent]) -> list[dict[str, Any]]:
    return [stream_record(n, event) for n, event in enumerate(events, start=1)]


BENCH_CONFIG = {
    "tracking": {
        "events": [
            {"key": "emoji", "name": {"en": "Emoji"}, "aggregations": ["group_array", "increment"]},
            {"key": "handouts", "name": {"en": "Handouts"}, "aggregations": ["array", "group_array"]},
            {"key": "rating", "name": {"en": "Rating"}, "aggregations": ["average"], "value_type": "number"},
            {"key": "name", "name": {"en": "Name"}, "aggregations": ["string"]},
        ]
    }
}


class _MemoryStore:
    """Storage stubbed out: the aggregator's logic alone is measured."""

    def __init__(self) -> None:
        self.saved = 0

    def load(
        self, aggregates: Any, rollups: Any, shard: str, profiles: Any = ()
    ) -> tuple[dict[Any, Any], dict[Any, Any], dict[Any, Any]]:
        return {}, {}, {}

    def get_aggregate(self, key: Any) -> None:
        return None

    def get_profile(self, plugin_id: str, user_id: str) -> None:
        return None

    def has_been_user(self, plugin_id: str, user_id: str) -> bool:
        return False

    def load_funnels(self, keys: Any) -> dict[Any, Any]:
        return {}

    def get_funnel(self, plugin_id: str, user_id: str) -> None:
        return None

    def load_rollups(self, rollups: Any, shard: str) -> dict[Any, Any]:
        return {}

    def put_index(self, plugin_id: str, user_id: str, name: str, entries: Any) -> None:
        pass

    def forget(self, events: Any) -> None:
        pass

    def record(self, record: Any) -> None:
        pass

    def save(self, state: Any) -> None:
        self.saved += 1

    def compact_rollups(self, plugin_id: str, before_day: str, idle_before: int, limit: int) -> int:
        return 0


def aggregate_throughput(records: int) -> dict[str, Any]:
    """Records per second through the aggregator's parsing, grouping and folds, on one core."""

    published = PublishedConfig(
        plugin_id="bench-plugin", config=PluginConfig.model_validate(BENCH_CONFIG), version=1, published_at=0
    )

    class Configs:
        def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig, PeopleLists]:
            return published, NO_PEOPLE_LISTS

        def add_trait_names(self, plugin_id: str, names: Any) -> None:
            pass

        def register_plugin(self, plugin_id: str, at: int) -> bool:
            return True

    store = _MemoryStore()
    aggregator = Aggregator(store, Configs(), index=store, rejections=store, workers=1)
    stream = stream_records(plugin_events(records, users=2_000, seed=1))
    batches = [stream[start : start + 100] for start in range(0, len(stream), 100)]
    started = time.process_time()
    for batch in batches:
        failures = aggregator.process("shard-bench", [decode(DynamoDBRecord(r)) for r in batch])
        assert not failures, failures
    elapsed = time.process_time() - started
    return {"records": records, "cpu_seconds": round(elapsed, 3), "records_per_s": round(records / elapsed)}


def aggregate_writes(database: dynamodb.Database, batches: int) -> dict[str, Any]:
    """Writes to each (plugin, key, user) aggregate per batch, through the real function."""

    with environment_of("QueryFunction", database):
        assert (
            Function("QueryFunction")(
                api_event("PUT", "/v1/plugins/bench-plugin/config", BENCH_CONFIG, headers=ADMIN)
            )["statusCode"]
            == 200
        )
    per_group: list[int] = []
    groups = 0
    with environment_of("AggregateFunction", database):
        aggregate = Function("AggregateFunction")
        events = plugin_events(batches * 100, users=30, seed=2)
        records = stream_records(events)
        for start in range(0, len(records), 100):
            with metered(client()) as usage:
                answer = aggregate(invocation("shard-bench", records[start : start + 100]))
            assert answer["batchItemFailures"] == [], answer
            written = {
                item: n
                for item, n in usage.items_written.items()
                if item[0] == "AggregatesTable" and is_aggregates_pk(item[1])
            }
            per_group += list(written.values())
            groups += len(written)
    return {
        "batches": batches,
        "groups": groups,
        "writes_per_group": round(sum(per_group) / len(per_group), 3),
        "max_writes_per_group": max(per_group),
    }
