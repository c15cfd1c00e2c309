"""Replaying event streams through the aggregate function the way Lambda does, with faults injected,
and the clean single pass those replays must equal. Shared by the moto and DynamoDB Local tests."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import strategies as st

from devstack.local.esm import ShardConsumer
from devstack.local.template import Template
from tests.streams import STREAM_ARN, canonical, stream_record
from tracking.aggregate.fold import (
    DAY_MS,
    Counted,
    KeySpec,
    StreamRecord,
    aggregate_key,
    fold,
    fold_rollup,
    rollup_key,
)
from tracking.keys import event_pk, is_aggregates_pk, is_internal_key
from tracking.models.aggregates import AggregateKey, AggregateState, RollupKey, RollupState
from tracking.models.canonical import CanonicalEvent
from tracking.models.config import PluginConfig, PublishedConfig
from tracking.storage.aggregate_items import aggregate_from_item
from tracking.storage.dynamo import client
from tracking.storage.rollup_items import rollup_from_item

CONFIG = {
    "tracking": {
        "events": [
            {"key": "emoji", "name": {"en": "Emoji"}, "aggregations": ["group_array", "increment"]},
            {"key": "fruit", "name": {"en": "Fruit"}, "aggregations": ["array", "string"]},
            {
                "key": "score",
                "name": {"en": "Score"},
                "aggregations": ["average", "array"],
                "value_type": "number",
            },
            {"key": "test", "name": {"en": "Test"}, "aggregations": ["increment"]},
        ]
    }
}
PUBLISHED = PublishedConfig(
    plugin_id="p1", config=PluginConfig.model_validate(CONFIG), version=1, published_at=0
)
VALUES: dict[str, list[Any]] = {
    "emoji": ["😍", "😱", "🎉", "👍"],
    "fruit": ["apples", "oranges", "pears", ""],
    "score": [Decimal(n) for n in (0, 1, 5, 10, 20)] + [Decimal("7.25")],
    "test": [None],
}
BASE_TIME = 1_764_016_800_000


@dataclass(frozen=True)
class Planned:
    shard: str
    seq: int
    event: CanonicalEvent | None  # None: a poison record (an image that cannot be read)


@dataclass
class Scenario:
    """Event streams over several shards (one user's events on more than one shard included)."""

    shards: dict[str, list[Planned]]
    batch_size: int
    faulty_invocations: int  # faults are injected only into the first invocations
    put_failure_rate: float
    get_failure_rate: float
    lost_response_rate: float
    seed: int

    @property
    def poison(self) -> list[Planned]:
        return [p for records in self.shards.values() for p in records if p.event is None]


@st.composite
def scenarios(draw: st.DrawFn, max_events: int = 60) -> Scenario:
    shard_names = draw(
        st.lists(st.sampled_from(["shard-A", "shard-B", "shard-C"]), min_size=1, max_size=3, unique=True)
    )
    count = draw(st.integers(1, max_events))
    shards: dict[str, list[Planned]] = {name: [] for name in shard_names}
    # Sequence numbers restart on every shard (a child shard's may be lower than its parent's).
    next_seq = {name: draw(st.integers(1, 10**20)) for name in shard_names}
    # Few users, keys, days and groups per scenario, so batches share aggregates and rollups.
    users = draw(st.integers(1, 4))
    keys = draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=4, unique=True))
    days = draw(st.integers(1, 3))
    groups = draw(st.lists(st.sampled_from([None, "control", "test"]), min_size=1, max_size=3, unique=True))
    for index in range(count):
        shard = draw(st.sampled_from(shard_names))
        seq = next_seq[shard]
        next_seq[shard] += draw(st.integers(1, 10**6))
        if draw(st.integers(0, 30)) == 0:
            shards[shard].append(Planned(shard, seq, None))
            continue
        key = draw(st.sampled_from(keys))
        event = canonical(
            key,
            draw(st.sampled_from(VALUES[key])),
            user=f"u{draw(st.integers(0, users - 1))}",
            # Event times may go backwards: "latest" is by event time, not arrival.
            at=BASE_TIME + draw(st.integers(0, days - 1)) * 86_400_000 + draw(st.integers(0, 5_000)),
            event_id=f"g:{index:06d}",
            ab_group=draw(st.sampled_from(groups)),
            commerce=draw(st.sampled_from([None, "purchase"])),
            total_value_base=draw(st.sampled_from([None, Decimal("9.99"), Decimal("0.01")])),
        )
        shards[shard].append(Planned(shard, seq, event))
    return with_faults(draw, shards)


def with_faults(draw: st.DrawFn, shards: dict[str, list[Planned]]) -> Scenario:
    """The records, delivered in batches of 1 to 12 with up to 25 failed invocations, puts and reads
    failing at random, and answers of committed writes lost."""
    return Scenario(
        shards=shards,
        batch_size=draw(st.integers(1, 12)),
        faulty_invocations=draw(st.integers(0, 25)),
        put_failure_rate=draw(st.sampled_from([0.0, 0.2, 0.5])),
        get_failure_rate=draw(st.sampled_from([0.0, 0.1])),
        lost_response_rate=draw(st.sampled_from([0.0, 0.2])),
        seed=draw(st.integers(0, 2**32)),
    )


POISON_IMAGE = {"pk": {"S": event_pk("p1", "u0")}, "sk": {"S": "g:poison"}, "kind": {"S": "track"}}


def _record(planned: Planned) -> dict[str, Any]:
    if planned.event is None:
        return stream_record(planned.seq, None, image=POISON_IMAGE)
    return stream_record(planned.seq, planned.event)


class LostResponse(Exception):
    """The function succeeded but Lambda never heard so (a timeout): it will deliver the batch again."""


@contextmanager
def _storage_faults(rng: random.Random, put_rate: float, get_rate: float) -> Iterator[None]:
    def fail(operation: str, rate: float) -> Callable[..., None]:
        def hook(**_: Any) -> None:
            if rng.random() < rate:
                raise ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "injected"}}, operation
                )

        return hook

    hooks = {"PutItem": fail("PutItem", put_rate), "BatchGetItem": fail("BatchGetItem", get_rate)}
    for operation, hook in hooks.items():
        client().meta.events.register(f"before-parameter-build.dynamodb.{operation}", hook)
    try:
        yield
    finally:
        for operation, hook in hooks.items():
            client().meta.events.unregister(f"before-parameter-build.dynamodb.{operation}", hook)


@dataclass
class Replay:
    on_failure: list[dict[str, Any]] = field(default_factory=list)
    invocations: int = 0
    faults: Counter[str] = field(default_factory=Counter)


def replay(scenario: Scenario, handler: Callable[[dict[str, Any]], Any]) -> Replay:
    """Deliver every shard (in order, as Lambda does a parent before its child) through Lambda's
    retry, bisect and on-failure rules, with faults in the first invocations."""
    mapping = Template.load().stream_mapping("AggregateFunction")
    # Faults stop before any batch can exhaust its retries, so only poison records are given up.
    mapping = replace(
        mapping, batch_size=scenario.batch_size, maximum_retry_attempts=scenario.faulty_invocations + 2
    )
    rng = random.Random(scenario.seed)
    result = Replay()

    def invoke(event: dict[str, Any]) -> Any:
        result.invocations += 1
        if result.invocations > scenario.faulty_invocations:
            return handler(event)
        with _storage_faults(rng, scenario.put_failure_rate, scenario.get_failure_rate):
            response = handler(event)
        if rng.random() < scenario.lost_response_rate:
            result.faults["lost response"] += 1
            raise LostResponse
        return response

    for shard, planned in scenario.shards.items():
        consumer = ShardConsumer(mapping, invoke, shard, STREAM_ARN, result.on_failure.append)
        consumer.deliver([_record(p) for p in planned])
    return result


@dataclass
class Outcome:
    aggregates: dict[AggregateKey, tuple[Any, ...]]
    rollups: dict[tuple[RollupKey, str], tuple[Any, ...]]


def _aggregate_view(state: AggregateState) -> tuple[Any, ...]:
    latest = (state.latest.value, state.latest.at, state.latest.event_id) if state.latest else None
    return (
        state.count,
        state.total,
        state.numeric,
        latest,
        state.values,
        state.values_total,
        list(state.counts.items()),
        state.other,
        state.first,
        (state.days_base, state.days),
    )


def _rollup_view(state: RollupState) -> tuple[Any, ...]:
    return (state.count, state.users, state.revenue, state.active)


def clean_pass(scenario: Scenario) -> Outcome:
    """Every readable record applied once, in order, with nothing failing."""
    aggregates: dict[AggregateKey, AggregateState] = {}
    rollups: dict[tuple[RollupKey, str], RollupState] = {}
    active_days: set[tuple[AggregateKey, int]] = set()
    for shard, planned in scenario.shards.items():
        for p in planned:
            if p.event is None:
                continue
            record = StreamRecord(p.seq, "INSERT", p.event)
            key = aggregate_key(p.event)
            state = aggregates.get(key) or AggregateState.start(key)
            aggregates[key], _ = fold(state, shard, [record], KeySpec.of(PUBLISHED, key[1]), BASE_TIME)
            rkey = rollup_key(p.event)
            rollup = rollups.get((rkey, shard)) or RollupState(rkey[0], rkey[1], rkey[2], rkey[3], shard)
            # A distinct user of the day: the first event of this user and key that day, in this pass.
            day = (key, p.event.event_time // DAY_MS)
            counted = Counted(record, aggregates[key].is_first(shard, p.seq), day not in active_days)
            active_days.add(day)
            rollups[(rkey, shard)], _ = fold_rollup(rollup, [counted], 0)
    return Outcome(
        {k: _aggregate_view(s) for k, s in aggregates.items()},
        {k: _rollup_view(s) for k, s in rollups.items()},
    )


def stored_outcome(dynamodb: Any, table: str = "AggregatesTable") -> Outcome:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table)
    return outcome_of_items(item for page in pages for item in page["Items"])


def outcome_of_items(items: Iterable[dict[str, Any]]) -> Outcome:
    """The aggregates and rollups among an aggregates table's items, as a clean pass sees them."""
    aggregates: dict[AggregateKey, tuple[Any, ...]] = {}
    rollups: dict[tuple[RollupKey, str], tuple[Any, ...]] = {}
    for item in items:
        if is_aggregates_pk(item["pk"]["S"]):
            state = aggregate_from_item(item)
            aggregates[state.identity] = _aggregate_view(state)
        elif "day" in item and not is_internal_key(item["key"]["S"]):
            # Key rollups only: the summary's own (funnel, A/B, refunds) are tested with the funnel.
            rollup = rollup_from_item(item)
            key = (rollup.plugin_id, rollup.day, rollup.key, rollup.group)
            rollups[(key, rollup.shard)] = _rollup_view(rollup)
    return Outcome(aggregates, rollups)


def naive_counts(scenario: Scenario) -> Counter[AggregateKey]:
    """An oracle that shares no code with the aggregator: events per (plugin, key, user)."""
    return Counter(
        aggregate_key(p.event) for ps in scenario.shards.values() for p in ps if p.event is not None
    )


def poison_reported(scenario: Scenario, result: Replay) -> bool:
    """Every poison record lies inside a batch described to the on-failure destination."""
    ranges = [
        (
            m["DDBStreamBatchInfo"]["shardId"],
            int(m["DDBStreamBatchInfo"]["startSequenceNumber"]),
            int(m["DDBStreamBatchInfo"]["endSequenceNumber"]),
        )
        for m in result.on_failure
    ]
    return all(any(s == p.shard and lo <= p.seq <= hi for s, lo, hi in ranges) for p in scenario.poison)


def assert_exactly_once(scenario: Scenario, result: Replay, stored: Outcome) -> None:
    """What every replay must come to: the clean pass, the naive counts, poison records reported."""
    expected = clean_pass(scenario)
    assert stored.aggregates == expected.aggregates
    assert stored.rollups == expected.rollups
    assert {key: view[0] for key, view in stored.aggregates.items()} == dict(naive_counts(scenario))
    assert poison_reported(scenario, result)
    if not scenario.poison:
        assert result.on_failure == []
