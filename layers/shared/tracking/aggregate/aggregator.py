"""The aggregator: applies one shard's batch of stream records to aggregates, profiles and rollups, one
write per (plugin, key, user) group, per profile and per rollup, and says which records must be
retried."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from tracking.aggregate.fold import (
    DAY_MS,
    Counted,
    KeySpec,
    StreamEvent,
    aggregate_key,
    fold,
    fold_funnel_rollup,
    fold_rollup,
    group_records,
)
from tracking.aggregate.funnel import FunnelKey, fold_funnel, in_funnel
from tracking.aggregate.profiles import Change, Link, ProfileGroups, ProfileKey, decide_links, fold_profile
from tracking.compact import dumps_compact
from tracking.keys import index_name
from tracking.models.aggregates import PENDING_IDS_MAX, AggregateKey, AggregateState, RollupKey, RollupState
from tracking.models.canonical import CanonicalEvent
from tracking.models.config import PublishedConfig
from tracking.models.failures import Conflict
from tracking.models.funnel import Change as FunnelChange
from tracking.models.funnel import FunnelState, funnel_key
from tracking.models.people import ANONYMOUS_IDS_MAX, LINK_DEPTH_MAX, TRAIT_COLUMNS_MAX, People, ProfileState
from tracking.models.rejections import Rejection, RejectionRecord, cut_payload

logger = logging.getLogger(__name__)

CONFLICT_RETRIES = 3
STATE_CACHE_MAX = 50_000
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
    def has_been_user(self, plugin_id: str, user_id: str) -> bool: ...
    def load_funnels(self, keys: Sequence[FunnelKey]) -> dict[FunnelKey, FunnelState]: ...
    def get_funnel(self, plugin_id: str, user_id: str) -> FunnelState | None: ...
    def load_rollups(self, rollups: Sequence[RollupKey], shard: str) -> dict[RollupKey, RollupState]: ...
    def save(self, state: AggregateState | RollupState | ProfileState | FunnelState) -> None: ...


class Configs(Protocol):
    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, People]: ...
    def add_trait_names(self, plugin_id: str, names: Sequence[str]) -> None: ...
    def register_plugin(self, plugin_id: str, at: int) -> bool: ...


class Index(Protocol):
    """A user's events: where the ids of client-named events go once an aggregate or profile has listed
    enough, and how the stored calls of a suppressed id are removed."""

    def put_index(
        self, plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]]
    ) -> None: ...
    def forget(self, events: Sequence[CanonicalEvent]) -> None: ...


class Refusals(Protocol):
    def record(self, record: RejectionRecord) -> None: ...


class BlockedByEarlierFailure(Exception):
    """A record held back because an earlier record of the same rollup failed: applying it first
    would let the rollup's sequence guard skip the earlier one on retry."""


@dataclass
class _Run:
    """One batch being applied: its shard and which of its records failed (by sequence number)."""

    shard: str
    start: int | None = None  # the invocation's first sequence number: this shard is done below it
    failures: dict[int, BaseException] = field(default_factory=dict)

    def fail(self, records: Sequence[StreamEvent], error: BaseException) -> None:
        for record in records:
            self.failures.setdefault(record.seq, error)

    def failed(self, record: StreamEvent) -> bool:
        return record.seq in self.failures

    def failed_at(self, seq: int) -> bool:
        return seq in self.failures

    def hold_after_failure(self, records: Sequence[StreamEvent]) -> int:
        """How many of an item's records come before the first that failed; the ones from it on are
        held back (applied later, the item's guard would skip the failed one on retry)."""
        for position, record in enumerate(records):
            if self.failed(record):
                held = records[position:]
                self.fail(held, BlockedByEarlierFailure(f"held back behind {held[0].seq}"))
                return position
        return len(records)


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
        self._registered: set[str] = set()  # plugins without a config this container has listed
        # Items as this container last wrote them, used instead of a read: every write is conditional
        # on the version, so a copy someone else has since changed fails its write and is read again.
        self._aggregates: dict[AggregateKey, AggregateState] = {}
        self._rollups: dict[tuple[RollupKey, str], RollupState] = {}
        self._funnels: dict[FunnelKey, FunnelState] = {}
        self._funnel_rollups: dict[tuple[RollupKey, str], RollupState] = {}

    def process(self, shard: str, records: Sequence[StreamEvent]) -> dict[int, BaseException]:
        """Apply a batch from ``shard`` (records in sequence order); returns the records (by sequence
        number) that failed."""
        run = _Run(shard, records[0].seq if records else None)
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
        self._register_unconfigured(records, configs)
        records = self._forget_suppressed(run, records, loaded)
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
        funnels: dict[FunnelKey, list[StreamEvent]] = {}
        for record in records:
            if record.event is not None and in_funnel(record):
                funnels.setdefault((record.event.plugin_id, record.event.user_id), []).append(record)
        if not aggregates and not rollups and not profiles.groups:
            return run.failures
        try:
            stored, stored_rollups, stored_profiles = self._store.load(
                [key for key in aggregates if key not in self._aggregates],
                [key for key in rollups if (key, shard) not in self._rollups],
                shard,
                list(profiles.groups),
            )
            users = frozenset(
                (record.event.plugin_id, record.event.user_id)
                for record in records
                if record.event is not None and record.event_name == "INSERT" and record.event.identified
            )
            identities = _Identities(self._store, shard)
            links, refused = decide_links(profiles.links, stored_profiles, shard, identities, users)
        except Exception as exc:
            logger.warning("batch not applied", extra={"shard": shard, "error": repr(exc)})
            run.fail(records, exc)
            return run.failures
        now = int(self._clock() * 1000)
        written = self._apply_profiles(run, profiles, stored_profiles, links, now)
        states = self._apply_aggregates(run, aggregates, stored, configs, now)
        self._apply_rollups(run, rollups, stored_rollups, states, configs)
        if funnels:
            try:
                self._apply_funnels(run, funnels, now)
            except Exception as exc:
                logger.warning("funnels not applied", extra={"shard": shard, "error": repr(exc)})
                run.fail([record for group in funnels.values() for record in group], exc)
        self._refuse([link for link in refused if not run.failed_at(link.seq)])
        self._register_traits(written, {plugin: people for plugin, (_, people) in loaded.items()})
        return run.failures

    def _forget_suppressed(
        self, run: _Run, records: Sequence[StreamEvent], loaded: Mapping[str, tuple[Any, People]]
    ) -> list[StreamEvent]:
        """Calls of forgotten ids stored before every container knew are never counted, and removed (a
        deletion's sweep cannot find a call keyed by its messageId that nothing listed); the records,
        those calls left out."""
        forgotten = [record for record in records if _suppressed(record, loaded)]
        if not forgotten:
            return list(records)
        try:
            self._index.forget([record.event for record in forgotten if record.event is not None])
        except Exception as exc:
            logger.warning("suppressed calls not removed", extra={"shard": run.shard, "error": repr(exc)})
            run.fail(forgotten, exc)
        left_out = {record.seq for record in forgotten}
        return [StreamEvent(r.seq, r.event_name, None) if r.seq in left_out else r for r in records]

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
                ready = entries[: run.hold_after_failure([record for record, _ in entries])]
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
        self._index.put_index(state.plugin_id, state.user_id, index_name(name, shard, seq), state.pending_ids)
        state.pending_ids = []

    def _refuse(self, links: Sequence[Link]) -> None:
        """Links that do not hold are rejections of their calls, recorded for the plugin: one record per
        plugin and batch, however many (its entries are capped, its counts are not)."""
        by_plugin: dict[str, list[Link]] = {}
        for link in links:
            by_plugin.setdefault(link.plugin_id, []).append(link)
        for plugin_id, refused in by_plugin.items():
            record = RejectionRecord(
                plugin_id=plugin_id,
                at=max(link.event.received_at for link in refused),
                dialect=refused[0].event.dialect,
                rejections=tuple(_refusal(link) for link in refused),
                counts={"VALIDATION": len(refused)},
            )
            try:
                self._refusals.record(record)
            except Exception as exc:
                logger.warning(
                    "link refusals not recorded", extra={"error": repr(exc), "links": len(refused)}
                )

    def _register_unconfigured(
        self, records: Sequence[StreamEvent], configs: Mapping[str, PublishedConfig | None]
    ) -> None:
        """A chatbot that sends widget events and never published a config is listed with the other
        plugins (once per container: the write is conditional, so repeating it costs one write)."""
        for record in records:
            event = record.event
            if event is None or event.dialect != "widget" or configs.get(event.plugin_id) is not None:
                continue
            if event.plugin_id in self._registered:
                continue
            try:
                self._configs.register_plugin(event.plugin_id, int(self._clock() * 1000))
                if len(self._registered) >= STATE_CACHE_MAX:
                    self._registered.clear()  # a flood of chatbot ids costs a write each, not memory
                self._registered.add(event.plugin_id)
            except Exception as exc:
                logger.warning("plugin not listed", extra={"plugin_id": event.plugin_id, "error": repr(exc)})

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
            base = self._aggregates.get(key) or stored.get(key) or AggregateState.start(key)
            try:
                state = self._apply(base, run, group, spec, now)
            except Exception:
                self._aggregates.pop(key, None)
                raise
            self._remember(self._aggregates, key, state)
            return state

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
            plugin, day, name, ab_group = rollup
            reset_at = KeySpec.of(configs[plugin], name).reset_at
            cached = self._rollups.get((rollup, run.shard))
            base = cached or stored.get(rollup) or RollupState(plugin, day, name, ab_group, run.shard)
            try:
                new = self._save_rollup(
                    base, run.shard, partial(fold_rollup, records=counted, reset_at=reset_at)
                )
                self._remember(self._rollups, (rollup, run.shard), new)
            except Exception as exc:
                self._rollups.pop((rollup, run.shard), None)
                logger.warning("rollup not written", extra={"rollup": rollup, "error": repr(exc)})
                run.fail(group, exc)

    def _apply_funnels(self, run: _Run, groups: dict[FunnelKey, list[StreamEvent]], now: int) -> None:
        """One write per user whose funnel moved, then the funnel rollups those moves change (each
        record's changes applied in sequence order, none past a record whose funnel failed)."""
        wanted = [key for key in groups if key not in self._funnels]
        stored = self._store.load_funnels(wanted) if wanted else {}

        def apply(item: tuple[FunnelKey, list[StreamEvent]]) -> dict[int, tuple[FunnelChange, ...]]:
            key, entries = item
            group = entries[: run.hold_after_failure(entries)]
            state = self._funnels.get(key) or stored.get(key) or FunnelState(plugin_id=key[0], user_id=key[1])
            try:
                for _ in range(CONFLICT_RETRIES):
                    new, changed, changes = fold_funnel(state, run.shard, group, now, batch_start=run.start)
                    if changed:
                        try:
                            self._store.save(new)
                        except Conflict:
                            state = self._store.get_funnel(*key) or FunnelState(
                                plugin_id=key[0], user_id=key[1]
                            )
                            continue
                    self._remember(self._funnels, key, new)
                    return changes
                raise Conflict(f"funnel {key} kept changing")
            except Exception:
                self._funnels.pop(key, None)
                raise

        items = list(groups.items())
        changes: dict[int, tuple[FunnelChange, ...]] = {}
        for (_, group), (found, error) in zip(items, self._map(_capture(apply), items), strict=True):
            if found is None:
                run.fail(group, error or RuntimeError("funnel not applied"))
            else:
                changes.update(found)
        self._apply_funnel_rollups(run, groups, changes)

    def _apply_funnel_rollups(
        self,
        run: _Run,
        groups: dict[FunnelKey, list[StreamEvent]],
        changes: dict[int, tuple[FunnelChange, ...]],
    ) -> None:
        # A record whose funnel failed has unknown changes: no funnel rollup may pass it.
        ordered = sorted((record for group in groups.values() for record in group), key=lambda r: r.seq)
        stop = next((record.seq for record in ordered if run.failed(record)), None)
        updates: dict[RollupKey, list[tuple[StreamEvent, int]]] = {}
        for record in ordered:
            if stop is not None and record.seq >= stop:
                if not run.failed(record):
                    run.fail([record], BlockedByEarlierFailure(f"held back behind sequence number {stop}"))
                continue
            assert record.event is not None
            for cohort_day, step, change in changes.get(record.seq, ()):
                rollup = (record.event.plugin_id, cohort_day, funnel_key(step), "none")
                updates.setdefault(rollup, []).append((record, change))
        if not updates:
            return
        wanted_rollups = [rollup for rollup in updates if (rollup, run.shard) not in self._funnel_rollups]
        try:
            stored_rollups = self._store.load_rollups(wanted_rollups, run.shard) if wanted_rollups else {}
        except Exception as exc:
            logger.warning("funnel rollups not read", extra={"error": repr(exc)})
            run.fail([record for entries in updates.values() for record, _ in entries], exc)
            return
        for rollup, entries in updates.items():
            plugin, day, name, ab_group = rollup
            cached = self._funnel_rollups.get((rollup, run.shard))
            base = cached or stored_rollups.get(rollup) or RollupState(plugin, day, name, ab_group, run.shard)
            try:
                new = self._save_rollup(base, run.shard, partial(fold_funnel_rollup, entries=entries))
                self._remember(self._funnel_rollups, (rollup, run.shard), new)
            except Exception as exc:
                self._funnel_rollups.pop((rollup, run.shard), None)
                logger.warning("funnel rollup not written", extra={"rollup": rollup, "error": repr(exc)})
                run.fail([record for record, _ in entries], exc)

    def _save_rollup(
        self, state: RollupState, shard: str, fold_into: Callable[[RollupState], tuple[RollupState, bool]]
    ) -> RollupState:
        """Fold and write a rollup; if the copy was stale (another container of this shard wrote it
        since), read it again and fold again: its sequence guard skips what it already holds."""
        for _ in range(CONFLICT_RETRIES):
            new, changed = fold_into(state)
            if not changed:
                return new
            try:
                self._store.save(new)
                return new
            except Conflict:
                key = (state.plugin_id, state.day, state.key, state.group)
                found = self._store.load_rollups([key], shard).get(key)
                state = found or RollupState(state.plugin_id, state.day, state.key, state.group, shard)
        raise Conflict(f"rollup {(state.plugin_id, state.day, state.key)} kept changing")

    @staticmethod
    def _remember(cache: dict[Any, Any], key: Any, state: Any) -> None:
        if len(cache) >= STATE_CACHE_MAX and key not in cache:
            cache.clear()  # a new start beats tracking ages: a miss costs one read
        cache[key] = state

    def _apply(
        self, state: AggregateState, run: _Run, group: Sequence[StreamEvent], spec: KeySpec, now: int
    ) -> AggregateState:
        """Fold the group into the aggregate and write it once; re-read and fold again if another
        shard's invocation wrote the item in between (a user's events on two shards after a split)."""
        for _ in range(CONFLICT_RETRIES):
            new, changed = fold(state, run.shard, group, spec, now, batch_start=run.start)
            if not changed:
                return new
            self._spill(new, run.shard, state.key)
            try:
                self._store.save(new)
                return new
            except Conflict:
                state = self._store.get_aggregate(state.identity) or AggregateState.start(state.identity)
        raise Conflict(f"aggregate {state.identity} kept changing")


@dataclass(frozen=True)
class _Identities:
    """What link decisions read, from the store."""

    store: Store
    shard: str

    def read_profiles(self, keys: Sequence[ProfileKey]) -> dict[ProfileKey, ProfileState]:
        return self.store.load([], [], self.shard, keys)[2]

    def has_been_user(self, plugin_id: str, user_id: str) -> bool:
        return self.store.has_been_user(plugin_id, user_id)


def _refusal(link: Link) -> Rejection:
    field = "previousId" if link.event.kind == "alias" else "anonymousId"
    return Rejection(
        code="VALIDATION",
        message="The link was refused",
        details=(
            {
                "field": field,
                "message": f"{link.anonymous!r} has been a user, is already part of another user, or "
                f"linking it to {link.user!r} would make a circle or a person over "
                f"{LINK_DEPTH_MAX} links deep or {ANONYMOUS_IDS_MAX} ids wide",
            },
        ),
        payload=cut_payload(
            dumps_compact({"type": link.event.kind, "userId": link.user, field: link.anonymous})
        ),
        message_id=link.event.message_id,
    )


def _plugin_of(record: StreamEvent) -> str | None:
    if record.event is not None:
        return record.event.plugin_id
    return record.rejected.plugin_id if record.rejected is not None else None


def _suppressed(record: StreamEvent, loaded: Mapping[str, tuple[Any, People]]) -> bool:
    event = record.event
    if event is None or record.event_name != "INSERT":
        return False
    return loaded[event.plugin_id][1].suppresses(event.user_id, event.anonymous_id, event.previous_id)


def _capture(apply: Callable[[T], R]) -> Callable[[T], tuple[R | None, BaseException | None]]:
    """``apply`` that answers its error instead of raising it (one group's failure is its own)."""

    def run(item: T) -> tuple[R | None, BaseException | None]:
        try:
            return apply(item), None
        except Exception as exc:
            logger.warning("state not written", extra={"item": repr(item)[:200], "error": repr(exc)})
            return None, exc

    return run
