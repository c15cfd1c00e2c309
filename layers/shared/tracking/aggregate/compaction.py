"""Folding idle rollups into their days' items, so a summary reads a bounded number of items per day
whatever the number of stream shards (a shard's rollups are many: one per key, group and day, and a
table has a shard per partition).

A shard's rollup stays exact on its own (its shard's sequence numbers guard it); once nobody has
written it for ``IDLE_SECONDS`` no retry of a batch can reach it any more (a batch is retried at most
5 times, each within the function's 60 s: template.yaml), and a day over is what it counted. Each
container, after a batch, folds at most ``LIMIT`` of a plugin's such rollups of the days before today,
at most every ``EVERY_SECONDS`` per plugin; a fold never fails a batch (it is tried again later)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from tracking.aggregate.fold import day_of

logger = logging.getLogger(__name__)

IDLE_SECONDS = 3_600
EVERY_SECONDS = 600
LIMIT = 200


class Compactable(Protocol):
    def compact_rollups(self, plugin_id: str, before_day: str, idle_before: int, limit: int) -> int: ...


class RollupCompaction:
    def __init__(
        self,
        store: Compactable,
        clock: Callable[[], float] = time.time,
        *,
        every_s: float = EVERY_SECONDS,
        idle_s: float = IDLE_SECONDS,
        limit: int = LIMIT,
    ) -> None:
        self._store = store
        self._clock = clock
        self._every_s = every_s
        self._idle_ms = int(idle_s * 1000)
        self._limit = limit
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def after_batch(self, plugins: Iterable[str]) -> int:
        """Fold what is due for these plugins; how many rollups were folded."""
        now = self._clock()
        with self._lock:
            due = [p for p in sorted(plugins) if now - self._last.get(p, -self._every_s) >= self._every_s]
            self._last.update(dict.fromkeys(due, now))
        folded = 0
        now_ms = int(now * 1000)
        for plugin_id in due:
            try:
                folded += self._store.compact_rollups(
                    plugin_id, day_of(now_ms), now_ms - self._idle_ms, self._limit
                )
            except Exception as exc:
                logger.warning("rollups not folded", extra={"plugin_id": plugin_id, "error": repr(exc)})
        return folded
