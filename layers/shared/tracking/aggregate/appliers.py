"""One applier per item kind the aggregator keeps: aggregates, rollups, profiles and funnels. Each
groups what it needs from the batch, folds it into the item (its own pure fold), and writes it through
``save_folded``; a group's failure fails its records and holds back the records behind them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from tracking.aggregate.batch import BlockedByEarlierFailure, Kept, Run, capture
from tracking.aggregate.fold import (
    DAY_MS,
    Counted,
    KeySpec,
    StreamRecord,
    aggregate_key,
    fold,
    fold_funnel_rollup,
    fold_rollup,
)
from tracking.aggregate.funnel import FunnelKey, fold_funnel
from tracking.aggregate.ports import Index, Store
from tracking.aggregate.profiles import Change, ProfileGroups, ProfileKey, fold_profile
from tracking.aggregate.saving import CONFLICT_RETRIES, save_folded
from tracking.keys import index_name
from tracking.models.aggregates import PENDING_IDS_MAX, AggregateKey, AggregateState, RollupKey, RollupState
from tracking.models.config import PublishedConfig
from tracking.models.funnel import Change as FunnelChange
from tracking.models.funnel import FunnelState
from tracking.models.people import ProfileState

logger = logging.getLogger(__name__)

Mapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]  # map, in parallel or not


def _with_nothing(fold_into: Callable[[Any], tuple[Any, bool]]) -> Callable[[Any], tuple[Any, bool, None]]:
    def folded(state: Any) -> tuple[Any, bool, None]:
        new, changed = fold_into(state)
        return new, changed, None

    return folded


class _Spilling:
    """Saves an aggregate or a profile after moving the ids of client-named events it lists to an
    index item in its user's partition (named by what wrote it, so a retried batch rewrites the same
    item)."""

    def __init__(self, store: Store, index: Index) -> None:
        self._store = store
        self._index = index

    def save(self, state: AggregateState | ProfileState, shard: str, name: str) -> None:
        if len(state.pending_ids) > PENDING_IDS_MAX:
            seq = state.applied[shard][0]
            entries = state.pending_ids
            self._index.put_index(state.plugin_id, state.user_id, index_name(name, shard, seq), entries)
            state.pending_ids = []
        self._store.save(state)


class Aggregates:
    """One write per (plugin, key, user), in parallel; a failed group fails its records."""

    def __init__(self, store: Store, index: Index, map_items: Mapper) -> None:
        self._store = store
        self._saving = _Spilling(store, index)
        self._map = map_items
        self.kept: Kept[AggregateKey, AggregateState] = Kept()

    def apply(
        self,
        run: Run,
        groups: dict[AggregateKey, list[StreamRecord]],
        stored: dict[AggregateKey, AggregateState],
        configs: Mapping[str, PublishedConfig | None],
        now: int,
    ) -> dict[AggregateKey, AggregateState]:
        def apply(item: tuple[AggregateKey, list[StreamRecord]]) -> AggregateState:
            key, group = item
            spec = KeySpec.of(configs[key[0]], key[1])
            base = self.kept.get(key) or stored.get(key) or AggregateState.start(key)
            fold_group = partial(
                fold, shard=run.shard, records=group, spec=spec, now_ms=now, batch_start=run.start
            )
            state, _ = self.kept.written(
                key,
                partial(
                    save_folded,
                    base,
                    _with_nothing(fold_group),
                    lambda state: self._saving.save(state, run.shard, key[1]),
                    lambda: self._store.get_aggregate(key) or AggregateState.start(key),
                    what=f"aggregate {key}",
                ),
            )
            return state

        items = list(groups.items())
        states: dict[AggregateKey, AggregateState] = {}
        for (key, group), (state, error) in zip(items, self._map(capture(apply), items), strict=True):
            if state is None:
                run.fail(group, error or RuntimeError("aggregate not applied"))
            else:
                states[key] = state
        return states


class RollupWriter:
    """Rollups are kept per stream shard: one writer per shard's batch, no conflict but a stale copy.
    Each write is stamped with when it was made (``written_at``): a rollup nobody wrote for a while
    can be folded into its day's item (``storage``'s ``compact_rollups``), no retry being able to
    reach it any more."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock
        self._kept: Kept[tuple[RollupKey, str], RollupState] = Kept()

    def missing(self, rollups: Sequence[RollupKey], shard: str) -> list[RollupKey]:
        return [rollup for rollup in rollups if (rollup, shard) not in self._kept]

    def save(
        self,
        rollup: RollupKey,
        shard: str,
        stored: Mapping[RollupKey, RollupState],
        fold_into: Callable[[RollupState], tuple[RollupState, bool]],
    ) -> RollupState:
        def fresh() -> RollupState:
            return RollupState(*rollup, shard)

        def reread() -> RollupState:
            return self._store.load_rollups([rollup], shard).get(rollup) or fresh()

        def stamped(state: RollupState) -> tuple[RollupState, bool, None]:
            new, changed = fold_into(state)
            if changed:
                new.written_at = int(self._clock() * 1000)
            return new, changed, None

        base = self._kept.get((rollup, shard)) or stored.get(rollup) or fresh()
        new, _ = self._kept.written(
            (rollup, shard),
            partial(save_folded, base, stamped, self._store.save, reread, what=f"rollup {rollup}"),
        )
        return new


class Rollups:
    """One write per rollup, each applying its records only up to the first that failed."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.writer = RollupWriter(store, clock)

    def apply(
        self,
        run: Run,
        groups: dict[RollupKey, list[StreamRecord]],
        stored: dict[RollupKey, RollupState],
        states: dict[AggregateKey, AggregateState],
        configs: Mapping[str, PublishedConfig | None],
    ) -> None:
        for rollup, group in groups.items():
            counted: list[Counted] = []
            for record in group:
                if run.failed(record):
                    break
                if record.event is None:  # recorded rejections: no user to count
                    counted.append(Counted(record, new_user=False))
                    continue
                state = states[aggregate_key(record.event)]
                event_day = record.event.event_time // DAY_MS
                counted.append(
                    Counted(
                        record,
                        new_user=state.is_first(run.shard, record.seq),
                        new_day=state.first_of_day(event_day, run.shard, record.seq),
                    )
                )
            held = group[len(counted) :]
            if held:
                run.fail(held, BlockedByEarlierFailure(f"held back behind sequence number {held[0].seq}"))
            if not counted:
                continue
            reset_at = KeySpec.of(configs[rollup[0]], rollup[2]).reset_at
            try:
                fold_counted = partial(fold_rollup, records=counted, reset_at=reset_at)
                self.writer.save(rollup, run.shard, stored, fold_counted)
            except Exception as exc:
                logger.warning("rollup not written", extra={"rollup": rollup, "error": repr(exc)})
                run.fail(group, exc)


class Profiles:
    """The anonymous ids' profiles first (a failed one fails its links), then the others; each applies
    its records only up to the first that failed, so its guard never skips one."""

    def __init__(self, store: Store, index: Index, map_items: Mapper) -> None:
        self._store = store
        self._saving = _Spilling(store, index)
        self._map = map_items

    def apply(
        self,
        run: Run,
        profiles: ProfileGroups,
        stored: dict[ProfileKey, ProfileState],
        links: dict[int, bool],
        now: int,
    ) -> list[ProfileState]:
        order = profiles.from_side_first()
        linked = {(link.plugin_id, link.anonymous) for link in profiles.links}
        written: list[ProfileState] = []
        for phase in ([key for key in order if key in linked], [key for key in order if key not in linked]):

            def apply(key: ProfileKey) -> ProfileState | None:
                entries = profiles.groups[key]
                ready = entries[: run.hold_after_failure([record for record, _ in entries])]
                if not ready:
                    return None
                return self._save(
                    key,
                    stored.get(key),
                    shard=run.shard,
                    entries=ready,
                    links=links,
                    now=now,
                    linked=key in linked,
                )

            for key, (state, error) in zip(phase, self._map(capture(apply), phase), strict=True):
                if error is not None:
                    run.fail([record for record, _ in profiles.groups[key]], error)
                elif state is not None:
                    written.append(state)
        return written

    def _save(
        self,
        key: ProfileKey,
        stored: ProfileState | None,
        *,
        shard: str,
        entries: list[tuple[StreamRecord, list[Change]]],
        links: dict[int, bool],
        now: int,
        linked: bool,
    ) -> ProfileState:
        def reread() -> ProfileState:
            return self._store.get_profile(*key) or ProfileState(plugin_id=key[0], user_id=key[1])

        state, _ = save_folded(
            stored or ProfileState(plugin_id=key[0], user_id=key[1]),
            _with_nothing(lambda state: fold_profile(state, shard, entries, links, now)),
            lambda state: self._saving.save(state, shard, "profile"),
            reread,
            what=f"profile {key}",
            # A link's verdict was made on what was read: its conflict fails the records, never re-folds.
            retries=1 if linked else CONFLICT_RETRIES,
        )
        return state


class Funnels:
    """One write per user whose funnel moved, then the funnel rollups those moves change (each record's
    changes applied in sequence order, none past a record whose funnel failed)."""

    def __init__(self, store: Store, map_items: Mapper, clock: Callable[[], float]) -> None:
        self._store = store
        self._map = map_items
        self.kept: Kept[FunnelKey, FunnelState] = Kept()
        self.rollups = RollupWriter(store, clock)

    def apply(self, run: Run, groups: dict[FunnelKey, list[StreamRecord]], now: int) -> None:
        wanted = [key for key in groups if key not in self.kept]
        stored = self._store.load_funnels(wanted) if wanted else {}

        def apply(item: tuple[FunnelKey, list[StreamRecord]]) -> dict[int, tuple[FunnelChange, ...]]:
            key, entries = item
            group = entries[: run.hold_after_failure(entries)]

            def reread() -> FunnelState:
                return self._store.get_funnel(*key) or FunnelState(plugin_id=key[0], user_id=key[1])

            base = self.kept.get(key) or stored.get(key) or FunnelState(plugin_id=key[0], user_id=key[1])
            _, changes = self.kept.written(
                key,
                partial(
                    save_folded,
                    base,
                    lambda state: fold_funnel(state, run.shard, group, now, batch_start=run.start),
                    self._store.save,
                    reread,
                    what=f"funnel {key}",
                ),
            )
            return changes

        items = list(groups.items())
        changes: dict[int, tuple[FunnelChange, ...]] = {}
        for (_, group), (found, error) in zip(items, self._map(capture(apply), items), strict=True):
            if found is None:
                run.fail(group, error or RuntimeError("funnel not applied"))
            else:
                changes.update(found)
        self._apply_rollups(run, groups, changes)

    def _apply_rollups(
        self,
        run: Run,
        groups: dict[FunnelKey, list[StreamRecord]],
        changes: dict[int, tuple[FunnelChange, ...]],
    ) -> None:
        # A record whose funnel failed has unknown changes: no funnel rollup may pass it.
        ordered = sorted((record for group in groups.values() for record in group), key=lambda r: r.seq)
        stop = next((record.seq for record in ordered if run.failed(record)), None)
        updates: dict[RollupKey, list[tuple[StreamRecord, int, int]]] = {}
        for record in ordered:
            if stop is not None and record.seq >= stop:
                if not run.failed(record):
                    run.fail([record], BlockedByEarlierFailure(f"held back behind sequence number {stop}"))
                continue
            assert record.event is not None
            for day, key, group, users, cents in changes.get(record.seq, ()):
                rollup = (record.event.plugin_id, day, key, group)
                updates.setdefault(rollup, []).append((record, users, cents))
        if not updates:
            return
        wanted = self.rollups.missing(list(updates), run.shard)
        try:
            stored = self._store.load_rollups(wanted, run.shard) if wanted else {}
        except Exception as exc:
            logger.warning("funnel rollups not read", extra={"error": repr(exc)})
            run.fail([entry[0] for entries in updates.values() for entry in entries], exc)
            return
        for rollup, entries in updates.items():
            try:
                self.rollups.save(rollup, run.shard, stored, partial(fold_funnel_rollup, entries=entries))
            except Exception as exc:
                logger.warning("funnel rollup not written", extra={"rollup": rollup, "error": repr(exc)})
                run.fail([entry[0] for entry in entries], exc)
