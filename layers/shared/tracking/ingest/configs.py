"""Plugin configs as ingest reads them: a short-lived cache, so a publish (or a suppression) takes
effect within ``CONFIG_CACHE_SECONDS`` on every container without a read per request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from tracking.api_errors import ValidationFailed
from tracking.models.config import PublishedConfig
from tracking.models.people import PeopleLists

T = TypeVar("T")


class ConfigReader(Protocol):
    def get_plugin(self, plugin_id: str) -> tuple[PublishedConfig | None, PeopleLists]: ...
    def plugin_for_write_key(self, write_key: str) -> str | None: ...


class PluginDirectory:
    """Read-through cache of configs and write keys (misses are cached too)."""

    def __init__(self, store: ConfigReader, ttl_seconds: float, clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, kind: str, name: str, load: Callable[[str], T]) -> T:
        now = self._clock()
        with self._lock:
            hit = self._cache.get((kind, name))
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]  # type: ignore[no-any-return]
        value = load(name)
        with self._lock:
            if len(self._cache) > 5_000:
                self._cache.clear()
            self._cache[(kind, name)] = (now, value)
        return value

    def config(self, plugin_id: str) -> PublishedConfig | None:
        return self._cached("plugin", plugin_id, self._store.get_plugin)[0]

    def people(self, plugin_id: str) -> PeopleLists:
        """The plugin's suppressed ids (read with its config: no read of its own)."""
        return self._cached("plugin", plugin_id, self._store.get_plugin)[1]

    def plugin_for_write_key(self, write_key: str) -> str | None:
        return self._cached("writekey", write_key, self._store.plugin_for_write_key)

    def require(self, plugin_id: str) -> PublishedConfig:
        """The plugin's config; a 422 naming ``plugin_id`` when it has none."""
        published = self.config(plugin_id)
        if published is None:
            raise ValidationFailed(
                "Unknown plugin",
                [{"field": "plugin_id", "message": f"plugin {plugin_id!r} has no published config"}],
            )
        return published
