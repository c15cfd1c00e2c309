"""The aggregator: applies one shard's batch of stream records to aggregates, profiles and rollups, one
write per (plugin, key, user) group, per profile and per rollup, and says which records must be
retried."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tracking.aggregate.fold import (
    Counted,
    KeySpec,
    StreamEvent,
    aggregate_key,
    fold,
    fold_rollup,
    group_records,
)
from tracking.aggregate.profiles import Change, Link, ProfileGroups, ProfileKey, decide_links, fold_profile
from tracking.compact import dumps_compact
from tracking.models.aggregates import PENDING_IDS_MAX, AggregateKey, AggregateState, RollupKey, RollupState
from tracking.models.config import PublishedConfig
from tracking.models.failures import Conflict
from tracking.models.people import TRAIT_COLUMNS_MAX, People, ProfileState
from tracking.models.rejections import Rejection, RejectionRecord, cut_payload
from tracking.models.request import SEP

logger = logging.getLogger(__name__)

CONFLICT_RETRIES = 3
T = TypeVar("T")
R = TypeVar("R")


class Store(Protocol):
    def load(
        self,
        aggregates: Sequence[AggregateKey],
        rollups: Sequence[RollupKey],
        shard: str,
        profiles: Sequence[ProfileKey] = (),
    ) -> tuple[
        dict[AggregateKey, AggregateState], dict[RollupKey, RollupState], dict[ProfileKey, ProfileState]
    ]: ...
    def get_aggregate(self, key: AggregateKey) -> AggregateState | None: ...
    def get_profile(self, plugin_id: str, user_id: str) -> ProfileState | None: ...
    def save(self, state: AggregateState | RollupState | ProfileState) -> None: ...


class Configs(Protocol):
    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, People]: ...
    def add_trait_names(self, plugin_id: str, names: Sequence[str]) -> None: ...


class Index(Protocol):
    """Where the ids of client-named events go once an aggregate or profile has listed enough."""

    def put_index(
        self, plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]]
    ) -> None: ...


class Refusals(Protocol):
    def record(self, record: RejectionRecord) -> None: ...


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

    def failed_at(self, seq: int) -> bool:
        return seq in self.failures


class Aggregator:
    def __init__(
        self,
        store: Store,
        configs: Configs,
        *,
        index: Index,
        refusals: Refusals,
        clock: Callable[[], float] = time.time,
        workers: int = 8,
    ) -> None:
        self._store = store
        self._configs = configs
        self._index = index
        self._refusals = refusals
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None

    def process(self, shard: str, records: Sequence[StreamEvent]) -> dict[int, BaseException]:
        """Apply a batch from ``shard`` (records in sequence order); returns the records (by sequence
        number) that failed."""
        run = _Run(shard)
        plugins = {plugin for record in records if (plugin := _plugin_of(record))}
        if not plugins:
            return run.failures
        try:
            loaded = {plugin: self._configs.get_plugin(plugin) for plugin in sorted(plugins)}
        except Exception as exc:
            logger.warning("batch not applied", extra={"shard": shard, "error": repr(exc)})
            run.fail(records, exc)
            return run.failures
        configs = {plugin: published for plugin, (published, _) in loaded.items()}
        # Calls of forgotten ids that were stored before every container knew: never counted.
        records = [_unless_suppressed(record, loaded) for record in records]
        grouped = group_records(records)
        run.failures.update(grouped.failed)
        profiles = ProfileGroups()
        for record in records:
            if record.seq in run.failures:
                continue
            try:
                profiles.add(record)
            except Exception as exc:  # whatever it holds, it fails alone
                run.failures[record.seq] = exc
        for seq, error in run.failures.items():
            logger.error(
                "stream record cannot be grouped", extra={"sequence_number": seq, "error": repr(error)}
            )
        aggregates, rollups = grouped.aggregates, grouped.rollups
        if not aggregates and not rollups and not profiles.groups:
            return run.failures
        try:
            stored, stored_rollups, stored_profiles = self._store.load(
                list(aggregates), list(rollups), shard, list(profiles.groups)
            )
            links, refused = decide_links(profiles.links, stored_profiles, shard, self._store.get_profile)
        except Exception as exc:
            logger.warning("batch not applied", extra={"shard": shard, "error": repr(exc)})
            run.fail(records, exc)
            return run.failures
        now = int(self._clock() * 1000)
        written = self._apply_profiles(run, profiles, stored_profiles, links, now)
        states = self._apply_aggregates(run, aggregates, stored, configs, now)
        self._apply_rollups(run, rollups, stored_rollups, states, configs)
        for link in refused:
            if not run.failed_at(link.seq):
                self._refuse(link)
        self._register_traits(written, {plugin: people for plugin, (_, people) in loaded.items()})
        return run.failures

    def _apply_profiles(
        self,
        run: _Run,
        profiles: ProfileGroups,
        stored: dict[ProfileKey, ProfileState],
        links: dict[int, bool],
        now: int,
    ) -> list[ProfileState]:
        """The anonymous ids' profiles first (a failed one fails its links), then the others; each
        applies its records only up to the first that failed, so its guard never skips one."""
        order = profiles.from_side_first()
        linked = {(link.plugin_id, link.anonymous) for link in profiles.links}
        written: list[ProfileState] = []
        for phase in ([key for key in order if key in linked], [key for key in order if key not in linked]):

            def apply(key: ProfileKey) -> ProfileState | None:
                entries = profiles.groups[key]
                ready = _prefix_before_failure(run, entries)
                if len(ready) < len(entries):
                    blocked = [record for record, _ in entries[len(ready) :]]
                    run.fail(blocked, BlockedByEarlierFailure(f"held back behind {blocked[0].seq}"))
                if not ready:
                    return None
                base = stored.get(key) or ProfileState(plugin_id=key[0], user_id=key[1])
                retry = key not in linked  # a link's verdict was made on what was read: never re-fold it
                return self._save_profile(base, run.shard, ready, links, now, retry=retry)

            results = self._map(_capture(apply), phase)
            for key, (state, error) in zip(phase, results, strict=True):
                if error is not None:
                    run.fail([record for record, _ in profiles.groups[key]], error)
                elif state is not None:
                    written.append(state)
        return written

    def _save_profile(
        self,
        state: ProfileState,
        shard: str,
        entries: list[tuple[StreamEvent, list[Change]]],
        links: dict[int, bool],
        now: int,
        *,
        retry: bool,
    ) -> ProfileState:
        for _ in range(CONFLICT_RETRIES if retry else 1):
            new, changed = fold_profile(state, shard, entries, links, now)
            if not changed:
                return new
            self._spill(new, shard, "profile")
            try:
                self._store.save(new)
                return new
            except Conflict:
                if not retry:
                    raise
                key = (state.plugin_id, state.user_id)
                state = self._store.get_profile(*key) or ProfileState(plugin_id=key[0], user_id=key[1])
        raise Conflict(f"profile {(state.plugin_id, state.user_id)} kept changing")

    def _spill(self, state: AggregateState | ProfileState, shard: str, name: str) -> None:
        """Move the ids of client-named events listed on a state to an index item in its user's
        partition (named by what wrote it, so a retried batch rewrites the same item)."""
        if len(state.pending_ids) <= PENDING_IDS_MAX:
            return
        seq = state.applied[shard][0]
        self._index.put_index(
            state.plugin_id, state.user_id, f"{name}{SEP}{shard}{SEP}{seq}", state.pending_ids
        )
        state.pending_ids = []

    def _refuse(self, link: Link) -> None:
        """A link that does not hold is a rejection of its call, recorded for the plugin."""
        field = "previousId" if link.event.kind == "alias" else "anonymousId"
        rejection = Rejection(
            code="VALIDATION",
            message="The link was refused",
            details=(
                {
                    "field": field,
                    "message": f"{link.anonymous!r} is already part of another user, or linking it to "
                    f"{link.user!r} would make a circle",
                },
            ),
            payload=cut_payload(
                dumps_compact({"type": link.event.kind, "userId": link.user, field: link.anonymous})
            ),
            message_id=link.event.message_id,
        )
        record = RejectionRecord(
            plugin_id=link.plugin_id,
            at=link.event.received_at,
            dialect=link.event.dialect,
            rejections=(rejection,),
            counts={"VALIDATION": 1},
        )
        try:
            self._refusals.record(record)
        except Exception as exc:
            logger.warning("link refusal not recorded", extra={"error": repr(exc)})

    def _register_traits(self, written: list[ProfileState], people: Mapping[str, People]) -> None:
        """Trait names a plugin's profiles hold, for its CSV's columns: one write when a new one appears."""
        for plugin_id, known in people.items():
            names = {name for state in written if state.plugin_id == plugin_id for name in state.traits}
            new = sorted(names - set(known.trait_names))[: max(0, TRAIT_COLUMNS_MAX - len(known.trait_names))]
            if new:
                try:
                    self._configs.add_trait_names(plugin_id, new)
                except Exception as exc:
                    logger.warning("trait names not registered", extra={"error": repr(exc)})

    def _map(self, apply: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        return list(self._pool.map(apply, items) if self._pool else map(apply, items))

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
        outcomes = self._map(_capture(apply), items)
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
            self._spill(new, shard, state.key)
            try:
                self._store.save(new)
                return new
            except Conflict:
                state = self._store.get_aggregate(state.identity) or AggregateState.start(state.identity)
        raise Conflict(f"aggregate {state.identity} kept changing")


def _plugin_of(record: StreamEvent) -> str | None:
    if record.event is not None:
        return record.event.plugin_id
    return record.rejected.plugin_id if record.rejected is not None else None


def _unless_suppressed(record: StreamEvent, loaded: Mapping[str, tuple[Any, People]]) -> StreamEvent:
    event = record.event
    if event is None:
        return record
    people = loaded[event.plugin_id][1]
    if people.suppresses(event.user_id, event.anonymous_id, event.previous_id):
        return StreamEvent(record.seq, record.event_name, None)
    return record


def _prefix_before_failure(
    run: _Run, entries: list[tuple[StreamEvent, list[Change]]]
) -> list[tuple[StreamEvent, list[Change]]]:
    for position, (record, _) in enumerate(entries):
        if run.failed(record):
            return entries[:position]
    return entries


def _capture(apply: Callable[[T], R]) -> Callable[[T], tuple[R | None, BaseException | None]]:
    """``apply`` that answers its error instead of raising it (one group's failure is its own)."""

    def run(item: T) -> tuple[R | None, BaseException | None]:
        try:
            return apply(item), None
        except Exception as exc:
            logger.warning("state not written", extra={"item": repr(item)[:200], "error": repr(exc)})
            return None, exc

    return run
