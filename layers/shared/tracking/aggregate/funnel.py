"""Each user's funnel, A/B group and revenue folded from stream records exactly once (pure logic,
like ``fold``; ``models.funnel`` says what is counted).

Each record that moves a user yields its changes to the summary's rollups; the funnel item
remembers them for ``SHARD_MEMORY_MS`` so that a retried record, skipped by the item's guard, yields
the same changes to rollups that did not apply them yet. A record that changes nothing is never
remembered: it changes nothing when retried either."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from tracking.aggregate.fold import SHARD_MEMORY_MS, StreamRecord, mark_applied
from tracking.models.funnel import Change, FunnelState, moves

FunnelKey = tuple[str, str]  # (plugin, user)
# Moves remembered for retries: a batch's own (at most 100) and others' while their shards may retry.
RECENT_MAX = 200


def _facts(state: FunnelState) -> tuple[object, ...]:
    return (state.done, state.entered_at, state.group, state.group_at, state.paid, state.refunded)


def in_funnel(record: StreamRecord) -> bool:
    event = record.event
    return record.counts and event is not None and moves(event)


def fold_funnel(
    state: FunnelState,
    shard: str,
    records: Sequence[StreamRecord],
    now_ms: int,
    *,
    batch_start: int | None = None,
) -> tuple[FunnelState, bool, dict[int, tuple[Change, ...]]]:
    """Apply one shard's records (in sequence order); the new state, whether it must be written, and
    each record's changes to the rollups (by sequence number). What is remembered of this shard's
    records below ``batch_start`` (the invocation's first) is dropped: they are done for good."""
    new = copy.deepcopy(state)
    if batch_start is not None:
        new.recent = {k: v for k, v in new.recent.items() if not (k[0] == shard and k[1] < batch_start)}
    last = new.applied.get(shard, (-1, 0))[0]
    changes: dict[int, tuple[Change, ...]] = {}
    changed = False
    for record in records:
        if record.seq <= last:
            remembered = new.recent.get((shard, record.seq))
            changes[record.seq] = remembered[1] if remembered else ()
            continue
        last = record.seq
        event = record.event
        if event is None or not in_funnel(record):
            changes[record.seq] = ()
            continue
        was = _facts(new)
        before = new.counted()
        refund = new.apply(event)
        if _facts(new) == was:
            changes[record.seq] = ()
            continue
        moved = tuple(new.changes_since(before) + ([refund] if refund else []))
        changes[record.seq] = moved
        if moved:
            new.recent[(shard, record.seq)] = (now_ms, moved)
        changed = True
    if changed:
        mark_applied(new, shard, last, now_ms)
        recent = {k: v for k, v in new.recent.items() if now_ms - v[0] < SHARD_MEMORY_MS}
        others = sorted((when, key) for key, (when, _) in recent.items() if key[0] != shard)
        for _, key in others[: max(0, len(recent) - RECENT_MAX)]:
            del recent[key]  # the oldest of other shards, past the bound (see RECENT_MAX)
        new.recent = recent
    return new, changed, changes
