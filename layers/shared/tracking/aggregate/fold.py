"""Aggregates per (plugin, key, user) and daily rollups, folded from stream records exactly once.

Pure logic: no AWS. A state remembers, per stream shard, the highest sequence number it has applied,
so a record Lambda delivers again (a retried batch, a batch whose success was lost) is recognised and
skipped. Sequence numbers only compare within one shard; one user's events can sit on several shards
(shards roll over every few hours and split with their partition), hence a map, pruned once a shard is
older than the stream's 24-hour retention.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from tracking.models.aggregates import (
    REJECTED_GROUP,
    AggregateKey,
    AggregateState,
    Entry,
    Latest,
    RollupKey,
    RollupState,
    group_key,
)
from tracking.models.canonical import CanonicalEvent, rank_id
from tracking.models.config import Aggregation, PublishedConfig
from tracking.models.rejections import RejectionRecord

# A stream keeps records 24 h; a shard last applied longer ago than this can never be re-delivered.
SHARD_MEMORY_MS = 26 * 3600 * 1000
DAY_MS = 86_400_000
COUNTED_KINDS = frozenset({"track", "page", "screen"})


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One stream record as the aggregator sees it: a stored event, or a recorded request's
    rejections (counted per code and day)."""

    seq: int
    event_name: str  # INSERT, MODIFY, REMOVE
    event: CanonicalEvent | None
    rejected: RejectionRecord | None = None
    # The event is stored under its own id, as an older version stored client-named events, not in
    # its user's partition: its id is listed (``pending_ids``) so deletion and access find it.
    by_id: bool = False

    @property
    def counts(self) -> bool:
        """Only a newly inserted event counts; overwrites (MODIFY) and TTL expiry (REMOVE) do not."""
        return self.event_name == "INSERT" and self.event is not None and self.event.kind in COUNTED_KINDS


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What to maintain for a key: its listed aggregations, and the time of its last reset."""

    aggregations: tuple[Aggregation, ...] = ("increment",)
    reset_at: int = 0

    @classmethod
    def of(cls, published: PublishedConfig | None, key: str) -> KeySpec:
        tracked = published.config.tracked_key(key) if published else None
        if tracked is None:  # undeclared keys (widget events, free Segment events) are counted
            return cls(("increment",), published.reset_at(key) if published else 0)
        return cls(tracked.aggregations, published.reset_at(key) if published else 0)


def day_of(event_time_ms: int) -> str:
    return datetime.fromtimestamp(event_time_ms / 1000, UTC).strftime("%Y-%m-%d")


def group_of(event: CanonicalEvent) -> str:
    return event.ab_group or "none"


def _reset(state: AggregateState, reset_at: int) -> None:
    fresh = AggregateState.start(state.identity)
    for name in (
        "count",
        "total",
        "numeric",
        "latest",
        "values",
        "values_total",
        "counts",
        "other",
        "first",
        "first_at",
        "last_at",
        "days_base",
        "days",
        "day_firsts",
    ):
        setattr(state, name, getattr(fresh, name))
    state.reset_at = reset_at


def fold(
    state: AggregateState,
    shard: str,
    records: Sequence[StreamRecord],
    spec: KeySpec,
    now_ms: int,
    *,
    batch_start: int | None = None,
) -> tuple[AggregateState, bool]:
    """Apply the records of one shard (in sequence order) that the state has not applied yet.

    ``batch_start`` is the first sequence number of the invocation: every record of this shard below
    it is done (Lambda delivers a shard's batch again from its first failed record), so what the
    aggregate remembers of those for a retry (``day_firsts``) is dropped.

    Returns the new state and whether anything counted (nothing to write otherwise).
    """
    new = copy.deepcopy(state)
    if batch_start is not None:
        new.forget_done(shard, batch_start)
    if spec.reset_at > new.reset_at:
        _reset(new, spec.reset_at)
    last = new.applied.get(shard, (-1, 0))[0]
    changed = False
    for record in records:
        if record.seq <= last:
            continue  # applied before: a redelivery
        last = record.seq
        event = record.event
        if not record.counts or event is None or event.received_at < new.reset_at:
            continue
        changed = True
        if new.first is None:
            new.first = (shard, record.seq)
        _count(new, event, spec.aggregations, listed=record.by_id)
        day = event.event_time // DAY_MS
        if not new.has_day(day):
            new.add_day(day, shard, record.seq, now_ms)
    if changed:
        mark_applied(new, shard, last, now_ms)
        new.forget_day_firsts(now_ms, SHARD_MEMORY_MS, keep=shard)
    return new, changed


class Guarded(Protocol):
    """An item with a per-shard guard: an aggregate or a profile."""

    applied: dict[str, tuple[int, int]]
    updated_at: int


def mark_applied(state: Guarded, shard: str, last: int, now_ms: int) -> None:
    """Remember the shard's last applied sequence number; forget shards quiet for SHARD_MEMORY_MS."""
    state.applied[shard] = (last, now_ms)
    state.applied = {
        s: (seq, when)
        for s, (seq, when) in state.applied.items()
        if s == shard or now_ms - when < SHARD_MEMORY_MS
    }
    state.updated_at = now_ms


def _count(
    state: AggregateState, event: CanonicalEvent, aggregations: Iterable[Aggregation], *, listed: bool
) -> None:
    state.count += 1
    state.seen(event.event_time)
    state.as_user = state.as_user or event.identified
    if listed:
        state.pending_ids.append((event.event_id, event.event_time))
    value = event.value
    if value is None:
        return
    for aggregation in aggregations:
        if aggregation == "average":
            if isinstance(value, Decimal):
                state.total += value
                state.numeric += 1
        elif aggregation == "string":
            candidate = Latest(value, event.event_time, rank_id(event.event_id))
            if state.latest is None or candidate.rank() > state.latest.rank():
                state.latest = candidate
        elif aggregation == "array":
            state.add_value(Entry(value, event.event_time, rank_id(event.event_id)))
        elif aggregation == "group_array":
            state.count_group(group_key(value))


@dataclass(frozen=True, slots=True)
class Counted:
    """A record as a rollup sees it: did it create its user's aggregate (a new user), did it make
    its day active for its user (a distinct user of the day)?"""

    record: StreamRecord
    new_user: bool
    new_day: bool = False


def fold_rollup(state: RollupState, records: Sequence[Counted], reset_at: int) -> tuple[RollupState, bool]:
    new = copy.copy(state)
    if reset_at > new.reset_at:
        new.count, new.users, new.revenue, new.active, new.reset_at = 0, 0, Decimal(0), 0, reset_at
    changed = False
    for counted in records:
        record = counted.record
        if record.seq <= new.seq:
            continue
        new.seq = record.seq
        if record.rejected is not None and record.event_name == "INSERT":
            refused = record.rejected.counts.get(new.key, 0)
            changed = changed or refused > 0
            new.count += refused
            continue
        event = record.event
        if not record.counts or event is None or event.received_at < new.reset_at:
            continue
        changed = True
        new.count += 1
        new.users += 1 if counted.new_user else 0
        new.active += 1 if counted.new_day else 0
        if event.commerce == "purchase" and event.total_value_base is not None:
            new.revenue += event.total_value_base
    return new, changed


def fold_funnel_rollup(
    state: RollupState, entries: Sequence[tuple[StreamRecord, int, int]]
) -> tuple[RollupState, bool]:
    """Users (and revenue) at one of the summary's internal keys (a funnel step of a cohort day, an
    A/B group, refunds) from one shard: each record's change of users and of cents, once."""
    new = copy.copy(state)
    changed = False
    for record, users, cents in entries:
        if record.seq <= new.seq:
            continue
        new.seq = record.seq
        new.users += users
        new.revenue += Decimal(cents).scaleb(-2)
        changed = True
    return new, changed


def aggregate_key(event: CanonicalEvent) -> AggregateKey:
    return (event.plugin_id, event.key, event.user_id)


def rollup_key(event: CanonicalEvent) -> RollupKey:
    return (event.plugin_id, day_of(event.event_time), event.key, group_of(event))


@dataclass
class Grouped:
    """A batch's records by the aggregate and the rollups they update (order kept), and the records
    whose keys could not even be worked out: each of those fails alone."""

    aggregates: dict[AggregateKey, list[StreamRecord]]
    rollups: dict[RollupKey, list[StreamRecord]]
    failed: dict[int, BaseException]


def _keys_of(record: StreamRecord) -> tuple[AggregateKey | None, list[RollupKey]]:
    if record.rejected is not None and record.event_name == "INSERT":
        refused = record.rejected
        day = day_of(refused.at)
        return None, [(refused.plugin_id, day, code, REJECTED_GROUP) for code in refused.counts]
    if record.counts and record.event is not None:
        return aggregate_key(record.event), [rollup_key(record.event)]
    return None, []


def group_records(records: Iterable[StreamRecord]) -> Grouped:
    """Records that count, grouped; a record of rejections updates the rollup of each error code it
    counts. Nothing one record holds can stop the others from being grouped."""
    grouped = Grouped({}, {}, {})
    for record in records:
        try:
            aggregate, rollups = _keys_of(record)
        except Exception as exc:  # whatever it holds, it fails alone
            grouped.failed[record.seq] = exc
            continue
        if aggregate is not None:
            grouped.aggregates.setdefault(aggregate, []).append(record)
        for rollup in rollups:
            grouped.rollups.setdefault(rollup, []).append(record)
    return grouped
