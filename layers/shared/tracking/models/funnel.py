"""The ordered funnel: each chatbot user's progress through the widget's steps, and how it is counted.

A user counts at a step once they have done it and every step before it (in any order of arrival),
in the cohort of the day they first visited (their earliest ``visitor`` event by event time). So no
step ever holds more users than the one before, in any range of days. Late events move a user
deeper, or into an earlier cohort; the aggregator turns each change into +1/-1 on the per-day
funnel rollups (internal keys, ``keys.funnel_key``), which the summary adds up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tracking.keys import FUNNEL_KEY_PREFIX, funnel_key, is_internal_key

__all__ = ["FUNNEL", "Change", "FunnelState", "funnel_key", "funnel_step", "is_internal_key"]

FUNNEL = ("visitor", "bot_open", "convo_started", "message_sent", "added_to_cart", "purchase")

# (day, step number from 1, +1 or -1): one change a record made to the funnel rollups
Change = tuple[str, int, int]


def funnel_step(key: str) -> int | None:
    """The step a rollup key counts (``keys.funnel_key``), or None for an ordinary event key."""
    if not key.startswith(FUNNEL_KEY_PREFIX):
        return None
    return int(key[len(FUNNEL_KEY_PREFIX) :])


@dataclass
class FunnelState:
    plugin_id: str
    user_id: str
    version: int = 0
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)  # shard -> (seq, when ms)
    updated_at: int = 0
    entered_at: int | None = None  # event time of the earliest visitor event
    done: int = 0  # bit i: step i (0 = visitor) done at least once
    # The changes each record made, while a retry of it may still come: (shard, seq) -> (when, changes)
    recent: dict[tuple[str, int], tuple[int, tuple[Change, ...]]] = field(default_factory=dict)

    def depth(self) -> int:
        steps = 0
        while steps < len(FUNNEL) and self.done >> steps & 1:
            steps += 1
        return steps

    def counted(self) -> Counter[tuple[str, int]]:
        """Where this user counts: (cohort day, step) for each step reached in order."""
        if self.entered_at is None:
            return Counter()
        day = datetime.fromtimestamp(self.entered_at / 1000, UTC).strftime("%Y-%m-%d")
        return Counter({(day, step): 1 for step in range(1, self.depth() + 1)})
