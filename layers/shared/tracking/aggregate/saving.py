"""How every item the aggregator keeps is written, exactly once: fold the batch's records into the
item as read, write it conditionally on that version, and when someone wrote it in between (another
container of the shard with a stale copy, a user's events on two shards after a split), read it again
and fold again: the item's per-shard guard skips what the re-read item already holds. Aggregates,
profiles, funnels and rollups all go through ``save_folded``; nothing else writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tracking.models.storage_failures import Conflict

CONFLICT_RETRIES = 3
S = TypeVar("S")
X = TypeVar("X")


def save_folded(
    state: S,
    fold: Callable[[S], tuple[S, bool, X]],
    save: Callable[[S], None],
    reread: Callable[[], S],
    *,
    what: str,
    retries: int = CONFLICT_RETRIES,
) -> tuple[S, X]:
    """The folded state (written when the fold changed it) and what the fold said besides.

    ``fold`` returns (new state, whether it changed, anything else); ``save`` writes a state
    conditionally on its version (``Conflict`` when it changed since); ``reread`` reads the item again,
    consistently. ``retries=1`` for a state whose fold was decided on what was read (a link): its
    conflict is raised, never folded again."""
    for attempt in range(retries):
        new, changed, extra = fold(state)
        if not changed:
            return new, extra
        try:
            save(new)
        except Conflict:
            if attempt == retries - 1:
                raise
            state = reread()
            continue
        return new, extra
    raise Conflict(f"{what} kept changing")  # unreachable with retries >= 1: the last attempt raised
