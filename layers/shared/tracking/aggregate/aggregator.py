"""The aggregator: applies one shard's batch of stream records to aggregates and rollups, one write
per (plugin, key, user) group and per rollup, and says which records must be retried."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from tracking.aggregate.fold import (
    Counted,
    KeySpec,
    StreamEvent,
    aggregate_key,
    fold,
    fold_rollup,
    group_records,
)
from tracking.models.aggregates import AggregateKey, AggregateState, RollupKey, RollupState
from tracking.models.config import PublishedConfig
from tracking.models.failures import Conflict

logger = logging.getLogger(__name__)

CONFLICT_RETRIES = 3


class Store(Protocol):
    def load(
        self, aggregates: Sequence[AggregateKey], rollups: Sequence[RollupKey], shard: str
    ) -> tuple[dict[AggregateKey, AggregateState], dict[RollupKey, RollupState]]: ...
    def get_aggregate(self, key: AggregateKey) -> AggregateState | None: ...
    def save(self, state: AggregateState | RollupState) -> None: ...


class Configs(Protocol):
    def get_config(self, plugin_id: str) -> PublishedConfig | None: ...


class BlockedByEarlierFailure(Exception):
    """A record held back because an earlier record of the same rollup failed: applying it first
    would let the rollup's sequence guard skip the earlier one on retry."""


@dataclass
class _Run:
    """One batch being applied: its shard and which of its records failed (by sequence number)."""

    shard: str
    failures: dict[int, BaseException] = field(default_factory=dict)

    def fail(self, records: Sequence[StreamEvent], error: BaseException) -> None:
        for record in records:
            self.failures.setdefault(record.seq, error)

    def failed(self, record: StreamEvent) -> bool:
        return record.seq in self.failures


class Aggregator:
    def __init__(
        self, store: Store, configs: Configs, clock: Callable[[], float] = time.time, workers: int = 8
    ) -> None:
        self._store = store
        self._configs = configs
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def process(self, shard: str, records: Sequence[StreamEvent]) -> dict[int, BaseException]:
        """Apply a batch from ``shard`` (records in sequence order); returns the records (by sequence
        number) that failed."""
        grouped = group_records(records)
        run = _Run(shard, dict(grouped.failed))
        for seq, error in grouped.failed.items():
            logger.error(
                "stream record cannot be grouped", extra={"sequence_number": seq, "error": repr(error)}
            )
        aggregates, rollups = grouped.aggregates, grouped.rollups
        if not aggregates and not rollups:
            return run.failures
        try:
            plugins = {key[0] for key in aggregates} | {key[0] for key in rollups}
            configs = {plugin: self._configs.get_config(plugin) for plugin in plugins}
            stored, stored_rollups = self._store.load(list(aggregates), list(rollups), shard)
        except Exception as exc:
            logger.warning("batch not applied", extra={"shard": shard, "error": repr(exc)})
            run.fail(records, exc)
            return run.failures
        now = int(self._clock() * 1000)
        states = self._apply_aggregates(run, aggregates, stored, configs, now)
        self._apply_rollups(run, rollups, stored_rollups, states, configs)
        return run.failures

    def _apply_aggregates(
        self,
        run: _Run,
        groups: dict[AggregateKey, list[StreamEvent]],
        stored: dict[AggregateKey, AggregateState],
        configs: Mapping[str, PublishedConfig | None],
        now: int,
    ) -> dict[AggregateKey, AggregateState]:
        """One write per (plugin, key, user), in parallel; failed groups fail their records."""

        def apply(item: tuple[AggregateKey, list[StreamEvent]]) -> AggregateState:
            key, group = item
            spec = KeySpec.of(configs[key[0]], key[1])
            return self._apply(stored.get(key) or AggregateState.start(key), run.shard, group, spec, now)

        items = list(groups.items())
        outcomes = self._pool.map(_capture(apply), items) if self._pool else map(_capture(apply), items)
        states: dict[AggregateKey, AggregateState] = {}
        for (key, group), (state, error) in zip(items, outcomes, strict=True):
            if state is None:
                run.fail(group, error or RuntimeError("aggregate not applied"))
            else:
                states[key] = state
        return states

    def _apply_rollups(
        self,
        run: _Run,
        groups: dict[RollupKey, list[StreamEvent]],
        stored: dict[RollupKey, RollupState],
        states: dict[AggregateKey, AggregateState],
        configs: Mapping[str, PublishedConfig | None],
    ) -> None:
        """One write per rollup, each applying its records only up to the first that failed."""
        for rollup, group in groups.items():
            counted: list[Counted] = []
            for record in group:
                if run.failed(record):
                    break
                if record.event is None:  # recorded rejections: no user to count
                    counted.append(Counted(record, new_user=False))
                    continue
                state = states[aggregate_key(record.event)]
                counted.append(Counted(record, new_user=state.is_first(run.shard, record.seq)))
            held = group[len(counted) :]
            if held:
                run.fail(held, BlockedByEarlierFailure(f"held back behind sequence number {held[0].seq}"))
            if not counted:
                continue
            plugin, day, name, ab_group = rollup
            reset_at = KeySpec.of(configs[plugin], name).reset_at
            base = stored.get(rollup) or RollupState(plugin, day, name, ab_group, run.shard)
            new, changed = fold_rollup(base, counted, reset_at)
            if changed:
                try:
                    self._store.save(new)
                except Exception as exc:
                    logger.warning("rollup not written", extra={"rollup": rollup, "error": repr(exc)})
                    run.fail(group, exc)

    def _apply(
        self, state: AggregateState, shard: str, group: Sequence[StreamEvent], spec: KeySpec, now: int
    ) -> AggregateState:
        """Fold the group into the aggregate and write it once; re-read and fold again if another
        shard's invocation wrote the item in between (a user's events on two shards after a split)."""
        for _ in range(CONFLICT_RETRIES):
            new, changed = fold(state, shard, group, spec, now)
            if not changed:
                return new
            try:
                self._store.save(new)
                return new
            except Conflict:
                state = self._store.get_aggregate(state.identity) or AggregateState.start(state.identity)
        raise Conflict(f"aggregate {state.identity} kept changing")


def _capture(
    apply: Callable[[tuple[AggregateKey, list[StreamEvent]]], AggregateState],
) -> Callable[[tuple[AggregateKey, list[StreamEvent]]], tuple[AggregateState | None, BaseException | None]]:
    def run(
        item: tuple[AggregateKey, list[StreamEvent]],
    ) -> tuple[AggregateState | None, BaseException | None]:
        try:
            return apply(item), None
        except Exception as exc:
            logger.warning("aggregate not written", extra={"aggregate": item[0], "error": repr(exc)})
            return None, exc

    return run
