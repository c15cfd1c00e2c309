"""The live view: each plugin's latest stored events, kept per stream shard (one writer each) and
merged when read (``GET /v1/plugins/{p}/events/recent``).

After each batch the aggregator hands each (plugin, shard) the batch stored events of its new
events (``LiveSink.add``, storage/live.py: a small head written each time, moved into the shard's
ring when full): never a write per event. What is stored is read again before each write, not kept
in memory, so events a deletion scrubbed (``forget``) are never written back from a container's
copy. A full batch (the shard is behind, more follow at once) is written only if the item it would
replace is over a second old: the container that wrote it knows without reading, any other reads it
with the item (Lambda gives a shard's batches to whichever container is free). Its events wait in
the container's memory for a later write of that shard; what waits untouched for a minute belongs to
a shard that container no longer serves and is dropped (newer events have been shown since). The
view is best effort: a failed write is logged and never fails the batch (the events themselves are
stored and counted either way); its events wait for the next."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from tracking.aggregate.fold import StreamRecord
from tracking.models.live import live_line, merged

logger = logging.getLogger(__name__)

FULL_BATCH = 100  # the aggregate function's BatchSize (template.yaml; a test keeps them equal)
FULL_BATCH_INTERVAL_MS = 1_000
PENDING_MAX_MS = 60_000


class LiveSink(Protocol):
    def add(
        self,
        plugin_id: str,
        shard: str,
        lines: Sequence[str],
        now_ms: int,
        *,
        unless_after: int | None = None,
    ) -> bool:
        """Put newly stored events (JSON lines, newest first) in the shard's view of the plugin, read
        again first (the store bounds its size, dropping the oldest); nothing if what it would replace
        was written after ``unless_after``. Whether it wrote."""


class LiveView:
    def __init__(self, sink: LiveSink, clock_ms: Callable[[], int]) -> None:
        self._sink = sink
        self._clock = clock_ms
        # Events not written yet, newest first, and when the latest of them came.
        self._pending: dict[tuple[str, str], tuple[list[str], int]] = {}
        self._written_at: dict[tuple[str, str], int] = {}  # written by this container within the interval

    def after_batch(self, shard: str, records: Sequence[StreamRecord]) -> None:
        """Put the batch's newly stored events in their plugins' views of the shard, and write them."""
        now = self._clock()
        fresh: dict[tuple[str, str], list[str]] = {}
        for record in records:
            if record.event_name == "INSERT" and record.event is not None:
                fresh.setdefault((record.event.plugin_id, shard), []).append(live_line(record.event))
        for key, lines in fresh.items():
            waiting = self._pending.get(key, ([], now))[0]
            self._pending[key] = (merged(waiting, lines), now)
        full = len(records) >= FULL_BATCH
        for key in [key for key in self._pending if key[1] == shard]:
            if full and now - self._written_at.get(key, 0) < FULL_BATCH_INTERVAL_MS:
                continue  # this container wrote it a moment ago: no need to read to know
            try:
                written = self._sink.add(
                    key[0],
                    shard,
                    self._pending[key][0],
                    now,
                    unless_after=now - FULL_BATCH_INTERVAL_MS if full else None,
                )
            except Exception as exc:  # never the batch's failure
                logger.warning("live view not written", extra={"plugin_id": key[0], "error": repr(exc)})
                continue
            if written:
                self._written_at[key] = now
                del self._pending[key]
        self._written_at = {k: at for k, at in self._written_at.items() if now - at < FULL_BATCH_INTERVAL_MS}
        self._pending = {k: v for k, v in self._pending.items() if now - v[1] < PENDING_MAX_MS}
