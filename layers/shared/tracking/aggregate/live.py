"""The live view: each plugin's latest stored events, kept per stream shard (one item each, one
writer each) and merged when read (``GET /v1/plugins/{p}/events/recent``).

After each batch the aggregator reads the shard's ring of each plugin the batch stored events of,
puts the new events in front and writes it back: one read and one write per (plugin, shard) and
batch, never one per event. The ring is read again each time, not kept in memory, so a ring a
deletion scrubbed (``forget``) is never written back whole from a container's copy. A full batch
(the shard is behind, more follow at once) writes at most once a second; its events wait in memory
for the next batch's write. The view is best effort: a failed write is logged and never fails the
batch (the events themselves are stored and counted either way); its events wait for the next."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from tracking.aggregate.fold import StreamRecord
from tracking.models.live import RING_MAX, live_line, merged

logger = logging.getLogger(__name__)

FULL_BATCH = 100  # the aggregate function's BatchSize (template.yaml; a test keeps them equal)
FULL_BATCH_INTERVAL_MS = 1_000


class LiveSink(Protocol):
    def recent(self, plugin_id: str, shard: str) -> list[str]:
        """The ring a shard's item holds (events as JSON lines, newest first); [] when none."""

    def keep(self, plugin_id: str, shard: str, lines: Sequence[str], now_ms: int) -> None:
        """Write the shard's ring (the store bounds its size, dropping the oldest)."""


class LiveView:
    def __init__(self, sink: LiveSink, clock_ms: Callable[[], int]) -> None:
        self._sink = sink
        self._clock = clock_ms
        self._pending: dict[tuple[str, str], list[str]] = {}  # events not written yet, newest first
        self._written_at: dict[tuple[str, str], int] = {}  # rings written within the interval

    def after_batch(self, shard: str, records: Sequence[StreamRecord]) -> None:
        """Put the batch's newly stored events in their plugins' rings, and write the rings."""
        fresh: dict[tuple[str, str], list[str]] = {}
        for record in records:
            if record.event_name == "INSERT" and record.event is not None:
                fresh.setdefault((record.event.plugin_id, shard), []).append(live_line(record.event))
        for key, lines in fresh.items():
            self._pending[key] = merged(self._pending.get(key, []), lines)
        now = self._clock()
        full = len(records) >= FULL_BATCH
        for key in [key for key in self._pending if key[1] == shard]:
            if full and now - self._written_at.get(key, 0) < FULL_BATCH_INTERVAL_MS:
                continue  # written a moment ago: these go with the next batch's write
            try:
                ring = merged(self._sink.recent(*key), self._pending[key])[:RING_MAX]
                self._sink.keep(key[0], shard, ring, now)
            except Exception as exc:  # never the batch's failure
                logger.warning("live view not written", extra={"plugin_id": key[0], "error": repr(exc)})
                continue
            self._written_at[key] = now
            del self._pending[key]
        self._written_at = {k: at for k, at in self._written_at.items() if now - at < FULL_BATCH_INTERVAL_MS}
