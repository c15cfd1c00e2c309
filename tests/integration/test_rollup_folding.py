"""The aggregates store folds idle shards' rollups into their days' items on DynamoDB's terms (moto):
one transaction each, the shard's rollup deleted on the version read, the day's item added to; what a
summary reads adds up to the same before and after, and a rollup changed since it was read stays."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tracking.models.aggregates import RollupState
from tracking.storage.aggregates import AggregateStore

DAY = "2025-11-24"
NOW = 1_764_115_200_000  # 2025-11-26 00:00 UTC
HOUR = 3_600_000


def rollup(shard: str, written_at: int, count: int = 3) -> RollupState:
    return RollupState(
        "p1",
        DAY,
        "visitor",
        "test",
        shard,
        count=count,
        users=1,
        revenue=Decimal("2.5"),
        written_at=written_at,
    )


def totals(store: AggregateStore) -> tuple[int, int, Decimal]:
    found = store.rollups("p1", DAY, DAY)
    return (
        sum(r.count for r in found),
        sum(r.users for r in found),
        sum((r.revenue for r in found), Decimal(0)),
    )


def test_idle_rollups_fold_into_the_days_item_and_add_up_the_same(aws: Any) -> None:
    store = AggregateStore(aws, "AggregatesTable")
    for n in range(5):
        store.save(rollup(f"shard-{n}", written_at=NOW - 2 * HOUR))
    store.save(rollup("shard-busy", written_at=NOW - 60_000))  # written a minute ago: a retry may come
    before = totals(store)
    assert store.compact_rollups("p1", "2025-11-26", NOW - HOUR, limit=100) == 5
    assert totals(store) == before == (18, 6, Decimal("15.0"))
    found = store.rollups("p1", DAY, DAY)
    assert sorted((r.shard, r.count) for r in found) == [("", 15), ("shard-busy", 3)]
    assert store.compact_rollups("p1", "2025-11-26", NOW - HOUR, limit=100) == 0  # nothing left to fold
    assert store.compact_rollups("p1", DAY, NOW, limit=100) == 0  # the day itself is not over


def test_a_rollup_changed_since_it_was_read_is_left_as_it_is(aws: Any) -> None:
    store = AggregateStore(aws, "AggregatesTable")
    stale = rollup("shard-0", written_at=NOW - 2 * HOUR)
    store.save(stale)
    newer = store.load_rollups([("p1", DAY, "visitor", "test")], "shard-0")[("p1", DAY, "visitor", "test")]
    newer.count += 1
    store.save(newer)  # version 2 now: the copy read before is stale
    assert store._rollups._fold_into_day(stale) == 0
    assert [(r.shard, r.count) for r in store.rollups("p1", DAY, DAY)] == [("shard-0", 4)]
