"""Idle rollups of days over fold into their days' items: a past day's summary then reads one item per
(key, group) whatever the number of shards, and counts what it counted before; a rollup written within
the last hour stays a shard's (a retry of its batch may still come); a late event for a folded day
still counts once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from devstack.fakes.aggregates import FakeAggregates
from devstack.fakes.control import FakeControl
from devstack.fakes.events import FakeEvents, FakeRejections
from devstack.fakes.stream import FakeStream
from devstack.local.builders import canonical
from tests.replay import PUBLISHED
from tracking.aggregate.aggregator import Aggregator
from tracking.aggregate.compaction import IDLE_SECONDS, RollupCompaction
from tracking.aggregate.fold import day_of
from tracking.models.canonical import CanonicalEvent

DAY_MS = 86_400_000
START = 1_764_028_800_000  # 2025-11-25 00:00 UTC
DAY = day_of(START)


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def world(shards: int, clock: Clock) -> tuple[FakeEvents, FakeAggregates, Any]:
    events, aggregates = FakeEvents(), FakeAggregates()
    control = FakeControl(configs={"p1": PUBLISHED})
    rejections = FakeRejections(events.table)
    aggregator = Aggregator(aggregates, control, index=events, rejections=rejections, clock=clock, workers=1)
    stream = FakeStream(events.table, shards=shards, batch_size=10)

    def deliver(calls: list[CanonicalEvent]) -> None:
        events.put_all(calls)
        assert stream.deliver(aggregator.process) == {}

    return events, aggregates, deliver


def day_of_traffic(users: int) -> list[CanonicalEvent]:
    return [
        canonical(key, None, user=f"u{n}", at=START + n * 1000 + i, event_id=f"g:{key}-{n}")
        for n in range(users)
        for i, key in enumerate(("visitor", "bot_open"))
    ]


def totals(aggregates: FakeAggregates, day: str = DAY) -> Counter[str]:
    found: Counter[str] = Counter()
    for rollup in aggregates.rollups("p1", day, day):
        found[f"{rollup.key} count"] += rollup.count
        found[f"{rollup.key} users"] += rollup.users
        found[f"{rollup.key} active"] += rollup.active
    return found


def test_a_day_over_reads_one_item_per_key_whatever_the_shards() -> None:
    read: dict[int, int] = {}
    for shards in (4, 64):
        clock = Clock(START + DAY_MS - 1)
        _, aggregates, deliver = world(shards, clock)
        deliver(day_of_traffic(200))
        before = totals(aggregates)
        assert len(aggregates.rollups("p1", DAY, DAY)) > 2  # a rollup per key and shard
        clock.ms = START + DAY_MS + IDLE_SECONDS * 1000 + 1  # the day is over and nobody wrote since
        folded = RollupCompaction(aggregates, clock, limit=10_000).after_batch(["p1"])
        assert folded > 0
        assert totals(aggregates) == before  # the same counts, exactly
        read[shards] = len(aggregates.rollups("p1", DAY, DAY))
    # visitor and bot_open, and their funnel steps: one item each, at 4 shards as at 64
    assert read == {4: 4, 64: 4}


def test_a_rollup_written_within_the_idle_time_stays_a_shards() -> None:
    clock = Clock(START + DAY_MS - 1)
    _, aggregates, deliver = world(4, clock)
    deliver(day_of_traffic(20))
    clock.ms = START + DAY_MS + IDLE_SECONDS * 1000 - 1_000  # a retry of the last batch may still come
    assert RollupCompaction(aggregates, clock).after_batch(["p1"]) == 0
    assert all(rollup.shard for rollup in aggregates.rollups("p1", DAY, DAY))


def test_a_late_event_for_a_folded_day_counts_once() -> None:
    clock = Clock(START + DAY_MS - 1)
    _, aggregates, deliver = world(4, clock)
    deliver(day_of_traffic(20))
    clock.ms = START + DAY_MS + IDLE_SECONDS * 1000 + 1
    RollupCompaction(aggregates, clock).after_batch(["p1"])
    # An import with a past time, for the folded day: it lands in a shard's rollup again, beside the
    # day's item, and both add up.
    deliver([canonical("visitor", None, user="late", at=START + 5, event_id="g:late")])
    assert totals(aggregates)["visitor count"] == 21
    assert totals(aggregates)["visitor users"] == 21
    # Folded again later: still 21, now in the day's item alone.
    clock.ms += (IDLE_SECONDS + 1) * 1000
    RollupCompaction(aggregates, clock).after_batch(["p1"])
    assert [(r.shard, r.count) for r in aggregates.rollups("p1", DAY, DAY) if r.key == "visitor"] == [
        ("", 21)
    ]


def test_a_container_folds_a_plugin_at_most_every_ten_minutes() -> None:
    asked: list[str] = []

    class Store:
        def compact_rollups(self, plugin_id: str, before_day: str, idle_before: int, limit: int) -> int:
            asked.append(plugin_id)
            return 0

    clock = Clock(START)
    compaction = RollupCompaction(Store(), clock)
    compaction.after_batch(["p1", "p2"])
    compaction.after_batch(["p1"])
    clock.ms += 600_000
    compaction.after_batch(["p1"])
    assert asked == ["p1", "p2", "p1"]
