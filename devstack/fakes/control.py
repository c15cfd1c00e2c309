"""The control table's parts the aggregator and ingest read and write, in memory: published configs,
the plugin's people lists, write keys, the list of chatbots without a config, and per-IP budgets."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from devstack.fakes.table import ConditionFailed
from tracking.models.config import PluginConfig, PublishedConfig
from tracking.models.control import DashboardKey, Grant
from tracking.models.people import NO_PEOPLE_LISTS, PeopleLists, suppression_hash
from tracking.models.storage_failures import ConfigChanged, StorageUnavailable, WriteKeyTaken
from tracking.storage.plugins import UNCONFIGURED_MAX


@dataclass
class FakeControl:
    configs: dict[str, PublishedConfig] = field(default_factory=dict)
    people: dict[str, PeopleLists] = field(default_factory=dict)
    write_keys: dict[str, str] = field(default_factory=dict)
    listed: dict[str, int] = field(default_factory=dict)  # the list of plugins: plugin -> at
    keys: dict[str, DashboardKey] = field(default_factory=dict)  # dashboard keys by hash, as created
    listings: dict[str, DashboardKey] = field(default_factory=dict)  # the plugin's list (with last use)
    unconfigured_max: int = UNCONFIGURED_MAX
    unconfigured: int = 0  # chatbots listed without a config (counted up to unconfigured_max)
    unavailable: bool = False  # every call fails as DynamoDB's throttling does
    stamp_reads: int = 0  # reads of the stamp alone

    def publish(
        self, plugin_id: str, config: PluginConfig, *, at: int = 0, write_key: str | None = None
    ) -> None:
        previous = self.configs.get(plugin_id)
        version = previous.version + 1 if previous else 1
        self.configs[plugin_id] = PublishedConfig(
            plugin_id=plugin_id, config=config, version=version, published_at=at
        )
        self.listed[plugin_id] = at
        if write_key is not None:
            self.write_keys[write_key] = plugin_id

    def _check(self) -> None:
        if self.unavailable:
            raise StorageUnavailable("Storage is unavailable (fake control); retry later")

    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists]:
        self._check()
        return self.configs.get(plugin_id), self.people.get(plugin_id, NO_PEOPLE_LISTS)

    def stamp(self, plugin_id: str) -> int:
        """Changes whenever the config or the people lists do (here: derived from them, so a test that
        edits them directly changes it too)."""
        self._check()
        self.stamp_reads += 1
        published, people = self.configs.get(plugin_id), self.people.get(plugin_id, NO_PEOPLE_LISTS)
        return hash((published.version if published else None, people))

    def plugin_with_stamp(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists, int]:
        published, people = self.get_plugin(plugin_id)
        self.stamp_reads -= 1  # read with them, not on its own
        return published, people, self.stamp(plugin_id)

    def plugin_for_write_key(self, write_key: str) -> str | None:
        self._check()
        return self.write_keys.get(write_key)

    def add_trait_names(self, plugin_id: str, names: Iterable[str]) -> None:
        self._check()
        people = self.people.get(plugin_id, NO_PEOPLE_LISTS)
        self.people[plugin_id] = replace(people, trait_names=tuple(sorted({*people.trait_names, *names})))

    def suppress_ids(self, plugin_id: str, user_ids: Sequence[str]) -> None:
        self.suppress(plugin_id, [suppression_hash(user_id) for user_id in user_ids])

    def suppress(self, plugin_id: str, hashes: Iterable[str]) -> None:
        self._check()
        people = self.people.get(plugin_id, NO_PEOPLE_LISTS)
        self.people[plugin_id] = replace(people, suppressed=people.suppressed | set(hashes))

    def lift_suppression(self, plugin_id: str, hashes: Iterable[str]) -> None:
        self._check()
        people = self.people.get(plugin_id, NO_PEOPLE_LISTS)
        self.people[plugin_id] = replace(people, suppressed=people.suppressed - set(hashes))

    def get_config(self, plugin_id: str) -> PublishedConfig | None:
        return self.get_plugin(plugin_id)[0]

    def save_config(self, published: PublishedConfig, previous: PublishedConfig | None) -> None:
        """As the control table's transaction: the version read must still be the stored one, and no
        write key may belong to another plugin; all of it or nothing."""
        self._check()
        plugin_id = published.plugin_id
        stored = self.configs.get(plugin_id)
        if (stored.version if stored else None) != (previous.version if previous else None):
            raise ConfigChanged(plugin_id)
        taken = [k for k in published.config.write_keys if self.write_keys.get(k, plugin_id) != plugin_id]
        if taken:
            raise WriteKeyTaken(taken)
        for key in previous.config.write_keys if previous else ():
            if key not in published.config.write_keys and self.write_keys.get(key) == plugin_id:
                del self.write_keys[key]
        self.write_keys.update(dict.fromkeys(published.config.write_keys, plugin_id))
        self.configs[plugin_id] = published
        self.listed[plugin_id] = published.published_at

    def is_listed(self, plugin_id: str) -> bool:
        self._check()
        return plugin_id in self.listed or plugin_id in self.configs

    def list_plugins(self, after: str | None, limit: int) -> tuple[list[str], bool]:
        self._check()
        found = sorted(p for p in {*self.listed, *self.configs} if after is None or p > after)
        return found[:limit], len(found) > limit

    # -- dashboard keys --------------------------------------------------------------------------------

    def save_dashboard_key(self, key: DashboardKey) -> None:
        self._check()
        if key.key_hash in self.keys:
            raise ConditionFailed(f"key {key.key_id} exists")
        self.keys[key.key_hash] = self.listings[key.key_hash] = key
        self.listed[key.plugin_id] = key.created_at

    def dashboard_key(self, key_hash: str) -> DashboardKey | None:
        self._check()
        return self.keys.get(key_hash)

    def list_keys(self, plugin_id: str) -> list[DashboardKey]:
        found = [key for key in self.listings.values() if key.plugin_id == plugin_id]
        return sorted(found, key=lambda key: (key.created_at, key.key_id))

    def listed_key(self, plugin_id: str, key_id: str) -> DashboardKey | None:
        return next((key for key in self.list_keys(plugin_id) if key.key_id == key_id), None)

    def delete_dashboard_key(self, key: DashboardKey) -> None:
        self._check()
        self.keys.pop(key.key_hash, None)
        self.listings.pop(key.key_hash, None)

    def key_used(self, key: DashboardKey, at: int) -> None:
        listed = self.listings.get(key.key_hash)
        if listed is not None and (listed.last_used is None or listed.last_used < at):
            self.listings[key.key_hash] = replace(listed, last_used=at)

    def register_plugin(self, plugin_id: str, at: int) -> bool:
        self._check()
        if plugin_id in self.listed:
            return True
        if self.unconfigured >= self.unconfigured_max:
            return False
        self.unconfigured += 1
        self.listed[plugin_id] = at
        return True


@dataclass
class _Window:
    start: int
    used: int
    holders: int


@dataclass
class FakeBudgets:
    """Per-IP budgets shared by every container, as ``ControlStore.reserve`` keeps them: a window opens
    with an IP's first request; a grant never takes the budget past its limit."""

    windows: dict[str, _Window] = field(default_factory=dict)
    salts: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # day: (salt, expires_at)

    def daily_salt(self, day: str, expires_at: int) -> bytes:
        return self.salts.setdefault(day, (secrets.token_bytes(32), expires_at))[0]

    def reserve(
        self, client_ip: str, want: int, limit: int, window_ms: int, now_ms: int, *, joining: bool = True
    ) -> Grant:
        window = self.windows.get(client_ip)
        if window is None or window.start <= now_ms - window_ms:
            self.windows[client_ip] = _Window(now_ms, want, 1)
            return Grant(now_ms, want, 1, limit - want)
        room = limit - window.used
        if room <= 0:
            return Grant(window.start, 0, window.holders, 0)
        granted = min(want, room)
        window.used += granted
        window.holders += 1 if joining else 0
        return Grant(window.start, granted, window.holders, limit - window.used)

    def release(self, client_ip: str, window_start: int, count: int) -> None:
        window = self.windows.get(client_ip)
        if window is not None and window.start == window_start:
            window.used -= count
