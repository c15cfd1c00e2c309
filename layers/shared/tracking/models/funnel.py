"""Each user's place in the summary: the ordered funnel, their A/B group, and their net revenue.

A user counts at a step once they have done it and every step before it (in any order of arrival),
in the cohort of the day they first visited (their earliest ``visitor`` event by event time). So no
step ever holds more users than the one before, in any range of days. Segment's semantic events
count as the steps they name (``SEMANTIC_STEPS``).

A user joins an A/B group with their earliest event (by event time) that names one: a widget call
with ``ab_test``, or Segment's ``Experiment Viewed``. The group counts them, whether they purchased,
and their net revenue (purchases less refunds, never below zero) on the day they joined it.
Refunds come off the revenue only as far as the user's purchases go.

Late events move a user deeper, into an earlier cohort or another group; the aggregator turns each
move into changes of the per-day rollups of internal keys (``tracking.keys``), which the summary
adds up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from tracking.keys import (
    AB_CONVERSIONS_KEY,
    AB_USERS_KEY,
    FUNNEL_KEY_PREFIX,
    REFUNDS_KEY,
    funnel_key,
    is_internal_key,
)
from tracking.models.canonical import CanonicalEvent

__all__ = [
    "FUNNEL",
    "SEMANTIC_STEPS",
    "Change",
    "FunnelState",
    "cents",
    "funnel_key",
    "funnel_step",
    "is_internal_key",
    "moves",
    "step_of",
]

FUNNEL = ("visitor", "bot_open", "convo_started", "message_sent", "added_to_cart", "purchase")
PURCHASE_STEP = FUNNEL.index("purchase")
# Segment's semantic events (its live chat and ecommerce specs) and the widget step each counts as.
SEMANTIC_STEPS = {
    "Live Chat Conversation Started": "convo_started",
    "Live Chat Message Sent": "message_sent",
    "Product Added": "added_to_cart",
    "Order Completed": "purchase",
}
NO_GROUP = "none"

# (day, rollup key, A/B group, users +/-, revenue in EUR cents +/-): one change a record made to
# the summary's rollups of internal keys
Change = tuple[str, str, str, int, int]
Slot = tuple[str, str, str]  # (day, rollup key, group)


def step_of(key: str) -> int | None:
    """The funnel step (0 = visitor) an event of ``key`` counts as, or None."""
    name = SEMANTIC_STEPS.get(key, key)
    return FUNNEL.index(name) if name in FUNNEL else None


def cents(amount: Decimal | None) -> int:
    """An amount in EUR as whole cents (stored totals are already rounded to the cent)."""
    return 0 if amount is None else int(amount.scaleb(2).to_integral_value())


def moves(event: CanonicalEvent) -> bool:
    """Whether an event can change its user's place: a funnel step, an A/B group, a purchase or a
    refund with a value."""
    valued = event.commerce in ("purchase", "refund") and event.total_value_base is not None
    return step_of(event.key) is not None or event.ab_group is not None or valued


def funnel_step(key: str) -> int | None:
    """The step a rollup key counts (``keys.funnel_key``), or None for an ordinary event key."""
    if not key.startswith(FUNNEL_KEY_PREFIX):
        return None
    return int(key[len(FUNNEL_KEY_PREFIX) :])


def _day(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d")


@dataclass
class FunnelState:
    plugin_id: str
    user_id: str
    version: int = 0
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)  # shard -> (seq, when ms)
    updated_at: int = 0
    entered_at: int | None = None  # event time of the earliest visitor event
    done: int = 0  # bit i: step i (0 = visitor) done at least once
    group: str | None = None  # the A/B group of the earliest event that named one
    group_at: int | None = None  # that event's time
    paid: int = 0  # purchases, EUR cents
    refunded: int = 0  # refunds, EUR cents
    # The changes each record made, while a retry of it may still come: (shard, seq) -> (when, changes)
    recent: dict[tuple[str, int], tuple[int, tuple[Change, ...]]] = field(default_factory=dict)

    def depth(self) -> int:
        steps = 0
        while steps < len(FUNNEL) and self.done >> steps & 1:
            steps += 1
        return steps

    def refunds_taken(self) -> int:
        """The refunds taken off revenue: as far as the user's purchases go."""
        return min(self.refunded, self.paid)

    def counted(self) -> dict[Slot, tuple[int, int]]:
        """Where this user counts, with the revenue counted there: (cohort day, step) for each step
        reached in order; their group's users (with their net revenue) and, once they purchased,
        its converted users."""
        slots: dict[Slot, tuple[int, int]] = {}
        if self.entered_at is not None:
            day = _day(self.entered_at)
            for step in range(1, self.depth() + 1):
                slots[(day, funnel_key(step), NO_GROUP)] = (1, 0)
        if self.group is not None and self.group_at is not None:
            day = _day(self.group_at)
            slots[(day, AB_USERS_KEY, self.group)] = (1, self.paid - self.refunds_taken())
            if self.done >> PURCHASE_STEP & 1:
                slots[(day, AB_CONVERSIONS_KEY, self.group)] = (1, 0)
        return slots

    def apply(self, event: CanonicalEvent) -> Change | None:
        """Take in one event; the change it makes to the refunds taken off revenue, if any."""
        step = step_of(event.key)
        if step is not None:
            self.done |= 1 << step
            if step == 0 and (self.entered_at is None or event.event_time < self.entered_at):
                self.entered_at = event.event_time
        if event.ab_group is not None and (self.group_at is None or event.event_time < self.group_at):
            self.group, self.group_at = event.ab_group, event.event_time
        taken = self.refunds_taken()
        if event.commerce == "purchase":
            self.paid += max(0, cents(event.total_value_base))
        elif event.commerce == "refund":
            self.refunded += max(0, cents(event.total_value_base))
        more = self.refunds_taken() - taken
        return (_day(event.event_time), REFUNDS_KEY, NO_GROUP, 0, -more) if more else None

    def changes_since(self, before: dict[Slot, tuple[int, int]]) -> list[Change]:
        after = self.counted()
        changes = []
        for slot in sorted(before.keys() | after.keys()):
            was, now = before.get(slot, (0, 0)), after.get(slot, (0, 0))
            if now != was:
                changes.append((*slot, now[0] - was[0], now[1] - was[1]))
        return changes
