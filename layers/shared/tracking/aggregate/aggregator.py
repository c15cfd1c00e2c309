"""The aggregator: applies one shard's batch of stream records to aggregates, profiles, rollups and
funnels, one write per (plugin, key, user) group, per profile, per funnel and per rollup, and says which
records must be retried.

The batch is read and grouped here; each item kind is applied by its own applier (``appliers.py``),
all written through ``saving.save_folded``; what a batch leaves besides its items is
``bookkeeping.py``'s."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tracking.aggregate.appliers import Aggregates, Funnels, Profiles, Rollups
from tracking.aggregate.batch import Run
from tracking.aggregate.bookkeeping import Bookkeeping
from tracking.aggregate.compaction import RollupCompaction
from tracking.aggregate.fold import StreamRecord, group_records
from tracking.aggregate.funnel import FunnelKey, in_funnel
from tracking.aggregate.live import LiveSink, LiveView
from tracking.aggregate.ports import Configs, Index, RejectionSink, Store
from tracking.aggregate.profiles import ProfileGroups, ProfileKey, decide_links
from tracking.models.config import PublishedConfig
from tracking.models.people import PeopleLists, ProfileState
from tracking.models.rejections import BOTS, RejectionRecord

logger = logging.getLogger(__name__)


class Aggregator:
    def __init__(
        self,
        store: Store,
        configs: Configs,
        *,
        index: Index,
        rejections: RejectionSink,
        clock: Callable[[], float] = time.time,
        workers: int = 8,
        live: LiveSink | None = None,
    ) -> None:
        self._store = store
        self._live = LiveView(live, lambda: int(clock() * 1000)) if live is not None else None
        self._configs = configs
        self._index = index
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
        self._bookkeeping = Bookkeeping(configs, rejections, clock)
        self._aggregates = Aggregates(store, index, self._map)
        self._rollups = Rollups(store, clock)
        self._profiles = Profiles(store, index, self._map)
        self._funnels = Funnels(store, self._map, clock)
        self._compaction = RollupCompaction(store, clock)

    def process(self, shard: str, records: Sequence[StreamRecord]) -> dict[int, BaseException]:
        """Apply a batch from ``shard`` (records in sequence order); returns the records (by sequence
        number) that failed. The batch's stored events then show in the live view (best effort)."""
        self._stored: Sequence[StreamRecord] = ()
        failures = self._apply(shard, records)
        if self._live is not None:
            try:
                self._live.after_batch(shard, self._stored)  # none of a suppressed id
            except Exception as exc:  # the live view is best effort: never the batch's failure
                logger.warning("live view not updated", extra={"shard": shard, "error": repr(exc)})
        return failures

    def _apply(self, shard: str, records: Sequence[StreamRecord]) -> dict[int, BaseException]:
        run = Run(shard, records[0].seq if records else None)
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
        self._bookkeeping.register_unconfigured(records, configs)
        records = self._forget_suppressed(run, records, loaded)
        self._stored = records
        records = [bots_apart(record, configs) for record in records]
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
        funnels: dict[FunnelKey, list[StreamRecord]] = {}
        for record in records:
            if record.event is not None and in_funnel(record):
                funnels.setdefault((record.event.plugin_id, record.event.user_id), []).append(record)
        if not aggregates and not rollups and not profiles.groups:
            return run.failures
        try:
            stored, stored_rollups, stored_profiles = self._store.load(
                [key for key in aggregates if key not in self._aggregates.kept],
                self._rollups.writer.missing(list(rollups), shard),
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
        written = self._profiles.apply(run, profiles, stored_profiles, links, now)
        states = self._aggregates.apply(run, aggregates, stored, configs, now)
        self._rollups.apply(run, rollups, stored_rollups, states, configs)
        if funnels:
            try:
                self._funnels.apply(run, funnels, now)
            except Exception as exc:
                logger.warning("funnels not applied", extra={"shard": shard, "error": repr(exc)})
                run.fail([record for group in funnels.values() for record in group], exc)
        self._bookkeeping.record_refused_links([link for link in refused if not run.failed_at(link.seq)])
        self._bookkeeping.register_traits(written, {plugin: people for plugin, (_, people) in loaded.items()})
        self._compaction.after_batch(plugins)
        return run.failures

    def _forget_suppressed(
        self, run: Run, records: Sequence[StreamRecord], loaded: Mapping[str, tuple[Any, PeopleLists]]
    ) -> list[StreamRecord]:
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
        return [StreamRecord(r.seq, r.event_name, None) if r.seq in left_out else r for r in records]

    def _map(self, apply: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        return list(self._pool.map(apply, items) if self._pool else map(apply, items))


@dataclass(frozen=True)
class _Identities:
    """What link decisions read, from the store."""

    store: Store
    shard: str

    def read_profiles(self, keys: Sequence[ProfileKey]) -> dict[ProfileKey, ProfileState]:
        return self.store.load([], [], self.shard, keys)[2]

    def has_been_user(self, plugin_id: str, user_id: str) -> bool:
        return self.store.has_been_user(plugin_id, user_id)


def _plugin_of(record: StreamRecord) -> str | None:
    if record.event is not None:
        return record.event.plugin_id
    return record.rejected.plugin_id if record.rejected is not None else None


def _suppressed(record: StreamRecord, loaded: Mapping[str, tuple[Any, PeopleLists]]) -> bool:
    event = record.event
    if event is None or record.event_name != "INSERT":
        return False
    return loaded[event.plugin_id][1].suppresses(event.user_id, event.anonymous_id, event.previous_id)


def bots_apart(record: StreamRecord, configs: Mapping[str, PublishedConfig | None]) -> StreamRecord:
    """A stored bot event of a plugin that leaves bots out counts only in its day's ``BOTS`` count: it
    becomes a record of that count (as a recorded rejection's counts are), nothing else of it applies
    (aggregates, rollups, funnel, profile). Every other record is as it was."""
    event = record.event
    if event is None or record.event_name != "INSERT" or event.context.get("bot") is not True:
        return record
    published = configs.get(event.plugin_id)
    if published is not None and published.config.bots == "include":
        return record
    counted = RejectionRecord(event.plugin_id, event.event_time, event.dialect, (), {BOTS: 1})
    return StreamRecord(record.seq, record.event_name, None, rejected=counted)
