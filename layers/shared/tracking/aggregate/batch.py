"""One batch being applied: which of its records failed, and what holds the records behind them back;
and the states a container keeps of what it last wrote."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tracking.aggregate.fold import StreamRecord

logger = logging.getLogger(__name__)

STATE_CACHE_MAX = 50_000
T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K")
S = TypeVar("S")
X = TypeVar("X")


class BlockedByEarlierFailure(Exception):
    """A record held back because an earlier record of the same item failed: applying it first would
    let the item's sequence guard skip the earlier one on retry."""


@dataclass
class Run:
    """One batch being applied: its shard and which of its records failed (by sequence number)."""

    shard: str
    start: int | None = None  # the invocation's first sequence number: this shard is done below it
    failures: dict[int, BaseException] = field(default_factory=dict)

    def fail(self, records: Sequence[StreamRecord], error: BaseException) -> None:
        for record in records:
            self.failures.setdefault(record.seq, error)

    def failed(self, record: StreamRecord) -> bool:
        return record.seq in self.failures

    def failed_at(self, seq: int) -> bool:
        return seq in self.failures

    def hold_after_failure(self, records: Sequence[StreamRecord]) -> int:
        """How many of an item's records come before the first that failed; the ones from it on are
        held back (applied later, the item's guard would skip the failed one on retry)."""
        for position, record in enumerate(records):
            if self.failed(record):
                held = records[position:]
                self.fail(held, BlockedByEarlierFailure(f"held back behind {held[0].seq}"))
                return position
        return len(records)


class Kept(Generic[K, S]):
    """Items as this container last wrote them, used instead of a read: every write is conditional on
    the version, so a copy someone else has since changed fails its write and is read again."""

    def __init__(self, most: int = STATE_CACHE_MAX) -> None:
        self._items: dict[K, S] = {}
        self._most = most

    def get(self, key: K) -> S | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keep(self, key: K, state: S) -> None:
        if len(self._items) >= self._most and key not in self._items:
            self._items.clear()  # a new start beats tracking ages: a miss costs one read
        self._items[key] = state

    def drop(self, key: K) -> None:
        self._items.pop(key, None)

    def written(self, key: K, write: Callable[[], tuple[S, X]]) -> tuple[S, X]:
        """``write()``'s state, kept; a failed write forgets the copy (the item is read next time)."""
        try:
            state, extra = write()
        except Exception:
            self.drop(key)
            raise
        self.keep(key, state)
        return state, extra


def capture(apply: Callable[[T], R]) -> Callable[[T], tuple[R | None, BaseException | None]]:
    """``apply`` that answers its error instead of raising it (one group's failure is its own)."""

    def run(item: T) -> tuple[R | None, BaseException | None]:
        try:
            return apply(item), None
        except Exception as exc:
            logger.warning("state not written", extra={"item": repr(item)[:200], "error": repr(exc)})
            return None, exc

    return run
