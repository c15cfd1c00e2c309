"""Aggregates as the aggregator folds them, storage keeps them and the dashboard reads them: one
state per (plugin, key, user), and daily rollups per (plugin, day, key, A/B group, shard)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tracking.models.canonical import Scalar

AggregateKey = tuple[str, str, str]  # plugin, key, user
RollupKey = tuple[str, str, str, str]  # plugin, day, key, group
GROUP_KEY_MAX_CHARS = 200
# The group slot of a rollup that counts refused calls instead of events (its key is the error code).
REJECTED_GROUP = "rejected"


@dataclass(frozen=True, slots=True)
class Latest:
    value: Scalar
    at: int  # event time, ms
    event_id: str

    def rank(self) -> tuple[int, str]:
        """Later event time wins; equal times are ordered by event id, so every replay agrees."""
        return (self.at, self.event_id)


def group_key(value: Scalar) -> str:
    """The map key a value is counted under in ``group_array`` (any Unicode, emoji included)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, Decimal):
        text = decimal_text(value)
    else:
        text = value
    return text[:GROUP_KEY_MAX_CHARS]


def decimal_text(value: Decimal) -> str:
    """``7.50`` -> ``7.5``, ``1E+1`` -> ``10``: plain notation, no trailing zeros."""
    return format(value.normalize(), "f")


@dataclass
class AggregateState:
    plugin_id: str
    user_id: str
    key: str
    version: int = 0  # 0: not stored yet
    reset_at: int = 0
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)  # shard -> (seq, when, ms)
    first: tuple[str, int] | None = None  # the record that created the aggregate (since its reset)
    count: int = 0
    total: Decimal = Decimal(0)
    numeric: int = 0
    latest: Latest | None = None
    values: list[Scalar] = field(default_factory=list)
    values_total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    other: int = 0
    updated_at: int = 0

    @classmethod
    def start(cls, key: AggregateKey) -> AggregateState:
        plugin_id, name, user_id = key
        return cls(plugin_id=plugin_id, user_id=user_id, key=name)

    @property
    def identity(self) -> AggregateKey:
        return (self.plugin_id, self.key, self.user_id)

    @property
    def empty(self) -> bool:
        return self.count == 0

    def is_first(self, shard: str, seq: int) -> bool:
        return self.first == (shard, seq)


@dataclass
class RollupState:
    """Counts of one (plugin, key, day, A/B group) from one shard: one writer, no contention."""

    plugin_id: str
    day: str  # YYYY-MM-DD (UTC, event time)
    key: str
    group: str  # "control", "test" or "none"
    shard: str
    version: int = 0
    reset_at: int = 0
    seq: int = -1
    count: int = 0
    users: int = 0
    revenue: Decimal = Decimal(0)


@dataclass
class UsersPage:
    users: dict[str, list[AggregateState]]  # in user order
    more: bool  # the plugin has users after these
