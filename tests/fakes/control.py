"""The control table's parts the aggregator and ingest read and write, in memory: published configs,
the plugin's people lists, write keys, the list of chatbots without a config, and per-IP budgets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from tracking.models.config import PluginConfig, PublishedConfig
from tracking.models.control import Grant
from tracking.models.failures import StorageUnavailable
from tracking.models.people import NO_PEOPLE, People, suppression_hash
from tracking.storage.control import UNCONFIGURED_MAX


@dataclass
class FakeControl:
    configs: dict[str, PublishedConfig] = field(default_factory=dict)
    people: dict[str, People] = field(default_factory=dict)
    write_keys: dict[str, str] = field(default_factory=dict)
    listed: dict[str, int] = field(default_factory=dict)  # chatbots without a config: plugin -> at
    unconfigured_max: int = UNCONFIGURED_MAX
    unavailable: bool = False  # every call fails as DynamoDB's throttling does
    reads: int = 0

    def publish(
        self, plugin_id: str, config: PluginConfig, *, at: int = 0, write_key: str | None = None
    ) -> None:
        previous = self.configs.get(plugin_id)
        version = previous.version + 1 if previous else 1
        self.configs[plugin_id] = PublishedConfig(
            plugin_id=plugin_id, config=config, version=version, published_at=at
        )
        if write_key is not None:
            self.write_keys[write_key] = plugin_id

    def _check(self) -> None:
        if self.unavailable:
            raise StorageUnavailable("Storage is unavailable (fake control); retry later")

    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, People]:
        self._check()
        self.reads += 1
        return self.configs.get(plugin_id), self.people.get(plugin_id, NO_PEOPLE)

    def plugin_for_write_key(self, write_key: str) -> str | None:
        self._check()
        return self.write_keys.get(write_key)

    def add_trait_names(self, plugin_id: str, names: Iterable[str]) -> None:
        self._check()
        people = self.people.get(plugin_id, NO_PEOPLE)
        self.people[plugin_id] = replace(people, trait_names=tuple(sorted({*people.trait_names, *names})))

    def suppress(self, plugin_id: str, user_ids: Sequence[str]) -> None:
        people = self.people.get(plugin_id, NO_PEOPLE)
        hashes = {suppression_hash(user_id) for user_id in user_ids}
        self.people[plugin_id] = replace(people, suppressed=people.suppressed | hashes)

    def register_plugin(self, plugin_id: str, at: int) -> bool:
        self._check()
        if plugin_id in self.listed:
            return True
        if len(self.listed) >= self.unconfigured_max:
            return False
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
