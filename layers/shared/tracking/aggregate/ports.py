"""What the aggregator needs from the world, as protocols: storage implements them (``wiring.py``
builds the real ones), tests and the scale simulation pass in-memory ones; and how a container keeps
plugins' configs between batches (``CurrentConfigs``)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from tracking.aggregate.funnel import FunnelKey
from tracking.aggregate.profiles import ProfileKey
from tracking.models.aggregates import AggregateKey, AggregateState, RollupKey, RollupState
from tracking.models.canonical import CanonicalEvent
from tracking.models.config import PublishedConfig
from tracking.models.funnel import FunnelState
from tracking.models.people import PeopleLists, ProfileState
from tracking.models.rejections import RejectionRecord

MAX_KEPT_PLUGINS = 5_000


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
    def compact_rollups(self, plugin_id: str, before_day: str, idle_before: int, limit: int) -> int: ...


class Configs(Protocol):
    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists]: ...
    def add_trait_names(self, plugin_id: str, names: Sequence[str]) -> None: ...
    def register_plugin(self, plugin_id: str, at: int) -> bool: ...


class StampedConfigs(Configs, Protocol):
    def stamp(self, plugin_id: str) -> int: ...
    def plugin_with_stamp(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists, int]: ...


class CurrentConfigs:
    """A plugin's config and people lists, kept by a container while the plugin's stamp is unchanged:
    each batch reads the stamp (one small consistent read) instead of the config and the lists (a
    read unit per 4 KB of config, on one item, at every batch of every shard). The stamp changes in
    the same transaction as any write of them, so what is kept is what a read would find: a key's
    reset or a suppression is seen by the first batch after it, as before."""

    def __init__(self, configs: StampedConfigs) -> None:
        self._configs = configs
        self._kept: dict[str, tuple[int, tuple[PublishedConfig | None, PeopleLists]]] = {}
        self._lock = threading.Lock()

    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists]:
        stamp = self._configs.stamp(plugin_id)
        with self._lock:
            kept = self._kept.get(plugin_id)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        published, people, stamp = self._configs.plugin_with_stamp(plugin_id)
        with self._lock:
            if len(self._kept) > MAX_KEPT_PLUGINS:
                self._kept.clear()
            self._kept[plugin_id] = (stamp, (published, people))
        return published, people

    def add_trait_names(self, plugin_id: str, names: Sequence[str]) -> None:
        self._configs.add_trait_names(plugin_id, names)

    def register_plugin(self, plugin_id: str, at: int) -> bool:
        return self._configs.register_plugin(plugin_id, at)


class Index(Protocol):
    """A user's events: where the ids of client-named events go once an aggregate or profile has listed
    enough, and how the stored calls of a suppressed id are removed."""

    def put_index(
        self, plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]]
    ) -> None: ...
    def forget(self, events: Sequence[CanonicalEvent]) -> None: ...


class RejectionSink(Protocol):
    """Where refused calls are recorded (the events table, beside the plugin's events)."""

    def record(self, record: RejectionRecord) -> None: ...
