"""Aggregates as the aggregator folds them, storage keeps them and the dashboard reads them: one
state per (plugin, key, user), and daily rollups per (plugin, day, key, A/B group, shard)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tracking.models.canonical import Scalar
from tracking.models.people import ProfileState

AggregateKey = tuple[str, str, str]  # plugin, key, user
RollupKey = tuple[str, str, str, str]  # plugin, day, key, group
# Bounds that keep an aggregate item small (it is rewritten on every update, and billed per KB): an
# array's values, 50 and 4,000 bytes of them (UTF-8); group_array's 50 distinct values, each counted
# under at most 200 characters and 200 bytes of it.
GROUP_KEY_MAX_CHARS = 200
GROUP_KEY_MAX_BYTES = 200
ARRAY_MAX_VALUES = 50
ARRAY_MAX_BYTES = 4000
GROUP_MAX_DISTINCT = 50
# Events the client named (keyed by their id, not in their user's partition) are listed on the
# aggregate that counted them, for deletion and access; past this many the list moves to an index
# item in the user's partition, so the aggregate stays small.
PENDING_IDS_MAX = 16
# Records whose day a retry must still tell (``day_firsts``): a batch's own (at most 100) and, past
# those, others' while their shards may still retry them; beyond this many the oldest of other shards
# are dropped (docs/DESIGN.md says what that costs: at worst one active user of a day uncounted).
DAY_FIRSTS_MAX = 200
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
    text = text[:GROUP_KEY_MAX_CHARS]
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= GROUP_KEY_MAX_BYTES:
        return text
    return raw[:GROUP_KEY_MAX_BYTES].decode("utf-8", "ignore")  # (a character cut in two is left out)


def decimal_text(value: Decimal) -> str:
    """``7.50`` -> ``7.5``, ``1E+1`` -> ``10``: plain notation, no trailing zeros."""
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class Entry:
    """One value of an ``array``, with what orders it: event time, then event id."""

    value: Scalar
    at: int
    event_id: str

    def rank(self) -> tuple[int, str]:
        return (self.at, self.event_id)


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
    values: list[Entry] = field(default_factory=list)  # in event-time order, the latest kept
    values_total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    other: int = 0
    updated_at: int = 0
    first_at: int | None = None  # event times of the first and last events counted
    last_at: int | None = None
    # Client-named events counted here and not yet moved to an index item: (event id, event time).
    pending_ids: list[tuple[str, int]] = field(default_factory=list)
    # The UTC days (days since 1970-01-01) with an event counted: a bit per day above ``days_base``.
    days_base: int = 0
    days: int = 0
    # Which record first counted a day, while a retry of it may still come (see ``first_of_day``).
    day_firsts: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # day -> (shard, seq, when)
    as_user: bool = False  # an event counted here named this id as its user (not anonymously)

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

    def has_day(self, day: int) -> bool:
        return bool(self.days) and day >= self.days_base and bool(self.days >> (day - self.days_base) & 1)

    def add_day(self, day: int, shard: str, seq: int, now_ms: int) -> None:
        """Mark the day active, remembering which record did it (the rollup of that day counts the
        user once, on that record, however often the record is delivered)."""
        if not self.days:
            self.days_base = day
        elif day < self.days_base:
            self.days <<= self.days_base - day
            self.days_base = day
        self.days |= 1 << (day - self.days_base)
        self.day_firsts[day] = (shard, seq, now_ms)

    def first_of_day(self, day: int, shard: str, seq: int) -> bool:
        """Did this record make its day active for this user and key? Remembered for
        ``memory_ms`` after it happened: long enough for every retry of the record."""
        found = self.day_firsts.get(day)
        return found is not None and found[:2] == (shard, seq)

    def forget_done(self, shard: str, batch_start: int) -> None:
        """Drop what is remembered of this shard's records below ``batch_start``: done for good."""
        self.day_firsts = {
            day: first
            for day, first in self.day_firsts.items()
            if not (first[0] == shard and first[1] < batch_start)
        }

    def forget_day_firsts(self, now_ms: int, memory_ms: int, keep: str | None = None) -> None:
        """Drop what is older than ``memory_ms``; then, past DAY_FIRSTS_MAX, the oldest of shards other
        than ``keep`` (the batch being applied, whose records may all be retried)."""
        kept = {d: f for d, f in self.day_firsts.items() if now_ms - f[2] < memory_ms}
        if len(kept) > DAY_FIRSTS_MAX:
            others = sorted((f[2], f[1], d) for d, f in kept.items() if f[0] != keep)
            for _, _, day in others[: len(kept) - DAY_FIRSTS_MAX]:
                del kept[day]
        self.day_firsts = kept

    def add_value(self, entry: Entry) -> None:
        """Place a value by event time and keep the latest ones within the bounds: the same values
        whatever order the events arrive in."""
        self.values_total += 1
        keep = self.values
        position = len(keep)
        while position and keep[position - 1].rank() > entry.rank():
            position -= 1
        keep.insert(position, entry)
        bound_values(keep)

    def count_group(self, name: str, times: int = 1) -> None:
        if name in self.counts or len(self.counts) < GROUP_MAX_DISTINCT:
            self.counts[name] = self.counts.get(name, 0) + times
        else:
            self.other += times

    def seen(self, at: int) -> None:
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)


def bound_values(values: list[Entry]) -> None:
    """Drop the oldest values past ARRAY_MAX_VALUES, then past ARRAY_MAX_BYTES (the latest stays)."""
    del values[: max(0, len(values) - ARRAY_MAX_VALUES)]
    size = sum(_bytes(entry.value) for entry in values)
    while len(values) > 1 and size > ARRAY_MAX_BYTES:
        size -= _bytes(values.pop(0).value)


def _bytes(value: Scalar) -> int:
    return len(str(value).encode("utf-8", "surrogatepass"))


def combine(states: list[AggregateState]) -> AggregateState:
    """One key's aggregates of several ids of one person (a user and the anonymous ids linked to it)
    read as one, by the contract's merge rules: counts and sums add, arrays interleave by event time,
    the later string wins, group counts add. The first state names the result."""
    head = states[0]
    if len(states) == 1:
        return head
    merged = AggregateState(plugin_id=head.plugin_id, user_id=head.user_id, key=head.key)
    for state in states:
        merged.count += state.count
        merged.total += state.total
        merged.numeric += state.numeric
        if state.latest is not None and (merged.latest is None or state.latest.rank() > merged.latest.rank()):
            merged.latest = state.latest
        merged.values_total += state.values_total
        for name, times in state.counts.items():
            merged.count_group(name, times)
        merged.other += state.other
        for at in (state.first_at, state.last_at):
            if at is not None:
                merged.seen(at)
        merged.updated_at = max(merged.updated_at, state.updated_at)
    merged.values = sorted((entry for state in states for entry in state.values), key=Entry.rank)
    bound_values(merged.values)
    return merged


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
    users: int = 0  # new users: whose aggregate of this key was created that day
    revenue: Decimal = Decimal(0)
    active: int = 0  # distinct users with an event of this key that day
    written_at: int = 0  # when it was last written (ms; 0: before this was kept, or a day's item)


# One id's aggregates and its profile, as a query of its items returns them.
UserItems = tuple[list[AggregateState], ProfileState | None]


@dataclass
class UsersPage:
    users: dict[str, list[AggregateState]]  # in user order
    more: bool  # the plugin has users after these
    profiles: dict[str, ProfileState] = field(default_factory=dict)

    def add(self, item: AggregateState | ProfileState) -> None:
        states = self.users.setdefault(item.user_id, [])
        if isinstance(item, ProfileState):
            self.profiles[item.user_id] = item
        else:
            states.append(item)

    def drop(self, user_id: str) -> None:
        self.users.pop(user_id, None)
        self.profiles.pop(user_id, None)
