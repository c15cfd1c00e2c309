"""Recording the calls ingest refused, for the plugin they were meant for, at bounded cost.

Each request that had rejections costs at most one write: one record of its rejections (and of the
counts it carries). Recording is capped per plugin per minute in each container; past the cap a
rejection is only counted, in memory, and the counts ride on the plugin's next record, or on a
count-only record written at most every 10 seconds while counts are waiting (checked on every
request the container serves). A flood of bad calls therefore costs at most ``per_minute + 6``
writes per plugin per container a minute. What a container had counted and not yet written is lost
if Lambda reclaims it within those 10 seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tracking.models.rejections import Rejection, RejectionRecord
from tracking.models.storage_failures import StorageUnavailable

logger = logging.getLogger(__name__)

RECORDS_PER_MINUTE = 20
FLUSH_AFTER_MS = 10_000
MAX_PLUGINS = 1_000


class RejectionSink(Protocol):
    def record(self, record: RejectionRecord) -> None: ...


@dataclass
class _Plugin:
    minute: int = -1
    recorded: int = 0  # records written in this minute
    last_write: int = 0
    pending: Counter[str] = field(default_factory=Counter)  # counted, not yet written
    dialect: str = ""


class RejectionLog:
    def __init__(
        self,
        sink: RejectionSink,
        per_minute: int = RECORDS_PER_MINUTE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self._per_minute = per_minute
        self._clock = clock
        self._plugins: dict[str, _Plugin] = {}
        self._lock = threading.Lock()

    def record(self, plugin_id: str, dialect: str, rejections: Sequence[Rejection]) -> None:
        """Record one request's rejections (or count them, past the cap); never fails the request."""
        if not rejections:
            return
        now = int(self._clock() * 1000)
        with self._lock:
            state = self._state(plugin_id)
            if state.minute != now // 60_000:
                state.minute, state.recorded = now // 60_000, 0
            state.pending.update(rejection.code for rejection in rejections)
            state.dialect = dialect
            if state.recorded < self._per_minute:
                state.recorded += 1
                kept: tuple[Rejection, ...] = tuple(rejections)
            elif now - state.last_write >= FLUSH_AFTER_MS:
                kept = ()
            else:
                return
            record = self._take(plugin_id, state, now, kept)
        self._write(record)

    def count(self, plugin_id: str, dialect: str, code: str, calls: int) -> None:
        """Count calls under ``code`` with nothing of them kept (written on a count-only record now if
        the plugin's last was 10 s ago, else with its next); never fails the request."""
        now = int(self._clock() * 1000)
        with self._lock:
            state = self._state(plugin_id)
            state.pending[code] += calls
            state.dialect = state.dialect or dialect
            if now - state.last_write < FLUSH_AFTER_MS:
                return
            record = self._take(plugin_id, state, now, ())
        self._write(record)

    def flush_due(self) -> None:
        """Write the counts a plugin has had waiting for 10 seconds (one count-only record each)."""
        now = int(self._clock() * 1000)
        with self._lock:
            due = [
                self._take(plugin_id, state, now, ())
                for plugin_id, state in self._plugins.items()
                if state.pending and now - state.last_write >= FLUSH_AFTER_MS
            ]
        for record in due:
            self._write(record)

    def _state(self, plugin_id: str) -> _Plugin:
        state = self._plugins.get(plugin_id)
        if state is None:
            if len(self._plugins) >= MAX_PLUGINS:
                self._plugins = {p: s for p, s in self._plugins.items() if s.pending}
            state = self._plugins[plugin_id] = _Plugin()
        return state

    @staticmethod
    def _take(plugin_id: str, state: _Plugin, now: int, kept: tuple[Rejection, ...]) -> RejectionRecord:
        record = RejectionRecord(plugin_id, now, state.dialect, kept, dict(state.pending))
        state.pending.clear()
        state.last_write = now
        return record

    def _write(self, record: RejectionRecord) -> None:
        try:
            self._sink.record(record)
        except StorageUnavailable as exc:
            # The client's answer does not depend on this: keep the counts for the next record.
            logger.warning("rejections not recorded", extra={"plugin": record.plugin_id, "error": str(exc)})
            with self._lock:
                self._state(record.plugin_id).pending.update(record.counts)
        except Exception:  # a record that cannot be written at all is a defect of ours, not the client's
            logger.exception("rejections not recordable", extra={"plugin": record.plugin_id})
