"""The live view: each plugin's latest stored events, kept per stream shard (one item each, one
writer each) and merged when read (``GET /v1/plugins/{p}/events/recent``).

A container keeps each (plugin, shard) ring it wrote in memory (read once from its item), puts a
batch's new events in front, and writes the ring once per batch: never one write per event. A full
batch (the shard is behind, more follow at once) writes at most once a second; its events go with
the next batch's write. The view is best effort: a failed write is logged and never fails the batch
(the events themselves are stored and counted either way)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tracking.aggregate.fold import StreamRecord
from tracking.models.live import RING_MAX, line_order, live_line

logger = logging.getLogger(__name__)

FULL_BATCH = 100  # the aggregate function's BatchSize (template.yaml; a test keeps them equal)
FULL_BATCH_INTERVAL_MS = 1_000
# Rings a container keeps in memory (the most recently written; another is read again from its item):
# at most this many times a ring's 200 events of at most 8 KB, about 60 KB typically.
RINGS_KEPT = 64


class LiveSink(Protocol):
    def recent(self, plugin_id: str, shard: str) -> list[str]:
        """The ring a shard's item holds (events as JSON lines, newest first); [] when none."""

    def keep(self, plugin_id: str, shard: str, lines: Sequence[str], now_ms: int) -> None:
        """Write the shard's ring (the store bounds its size, dropping the oldest)."""


@dataclass
class _Ring:
    lines: list[str]
    order: dict[str, tuple[int, str]] = field(default_factory=dict)  # line -> its order key
    written_at: int = 0
    dirty: bool = False

    def add(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.order.setdefault(line, line_order(line))
        seen: set[str] = set()
        merged = []
        for line in sorted(set(self.lines) | set(lines), key=lambda kept: self.order[kept], reverse=True):
            event_id = self.order[line][1]
            if event_id not in seen:  # a batch delivered again: its events once
                seen.add(event_id)
                merged.append(line)
        self.lines = merged[:RING_MAX]
        self.order = {line: self.order[line] for line in self.lines}
        self.dirty = True


class LiveView:
    def __init__(self, sink: LiveSink, clock_ms: Callable[[], int]) -> None:
        self._sink = sink
        self._clock = clock_ms
        self._rings: OrderedDict[tuple[str, str], _Ring] = OrderedDict()

    def after_batch(self, shard: str, records: Sequence[StreamRecord]) -> None:
        """Put the batch's newly stored events in their plugins' rings, and write the rings."""
        fresh: dict[str, list[str]] = {}
        for record in records:
            if record.event_name == "INSERT" and record.event is not None:
                fresh.setdefault(record.event.plugin_id, []).append(live_line(record.event))
        for plugin_id, lines in fresh.items():
            try:
                self._ring(plugin_id, shard).add(lines)
            except Exception as exc:  # never the batch's failure
                logger.warning("live view not updated", extra={"plugin_id": plugin_id, "error": repr(exc)})
        now = self._clock()
        full = len(records) >= FULL_BATCH
        for (plugin_id, ring_shard), ring in self._rings.items():
            if ring_shard != shard or not ring.dirty:
                continue
            if full and now - ring.written_at < FULL_BATCH_INTERVAL_MS:
                continue  # written a moment ago: these go with the next batch's write
            try:
                self._sink.keep(plugin_id, shard, ring.lines, now)
                ring.written_at, ring.dirty = now, False
            except Exception as exc:
                logger.warning("live view not written", extra={"plugin_id": plugin_id, "error": repr(exc)})

    def _ring(self, plugin_id: str, shard: str) -> _Ring:
        key = (plugin_id, shard)
        ring = self._rings.get(key)
        if ring is None:
            ring = _Ring(self._sink.recent(plugin_id, shard))
            ring.order = {line: line_order(line) for line in ring.lines}
            self._rings[key] = ring
        self._rings.move_to_end(key)
        for old, kept in list(self._rings.items())[: max(0, len(self._rings) - RINGS_KEPT)]:
            if not kept.dirty:  # one not written yet stays until its write
                del self._rings[old]
        return ring
