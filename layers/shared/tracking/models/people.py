"""People: who an id is (profiles), which ids are one person (links), and which ids a plugin must
forget (suppressions) and is forgetting (deletions).

A profile is kept per (plugin, id), beside that id's aggregates, only for ids that have identified,
been linked or sent traits; ids that never did cost nothing. A link makes an anonymous id part of a
user: the anonymous id's profile says ``merged_into``, the user's lists it in ``anonymous_ids``. The
ids' aggregates stay where they were counted and are read as one person (``aggregates.combine``),
so a link moves nothing and can be applied any number of times.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tracking.models.canonical import CanonicalEvent, rank_id

# A person is at most this many links deep (user <- anonymous <- ...) and this many ids besides its
# user, counted over the whole person; a link past either, or round in a circle, is refused.
LINK_DEPTH_MAX = 8
ANONYMOUS_IDS_MAX = 100
# What a read or a deletion follows at most: above what a link decision allows (two links decided at
# once on two shards may each pass the check), so whatever the links made is read and deleted whole.
READ_DEPTH_MAX = 2 * LINK_DEPTH_MAX
READ_IDS_MAX = 2 * (ANONYMOUS_IDS_MAX + 1)
# What one profile keeps (it is rewritten on every identify): at most TRAITS_MAX traits, GROUPS_MAX
# groups and GROUP_TRAITS_MAX traits over all its groups; a trait's name at most TRAIT_NAME_MAX_BYTES
# (longer names are not kept: the event keeps them), its value's JSON at most TRAIT_VALUE_MAX_BYTES
# (a longer value is kept as that much of its JSON text, ending in "…"), its event id as a rank of at
# most RANK_ID_MAX_CHARS. With ids of at most 512 bytes, a profile holds under 320 KB; one past 60 KB
# is stored as several items of at most 62 KB (``storage.profile_items``; docs/DESIGN.md, "What each
# item holds at most").
TRAITS_MAX = 100
GROUPS_MAX = 50
GROUP_TRAITS_MAX = 100
TRAIT_NAME_MAX_BYTES = 256
TRAIT_VALUE_MAX_BYTES = 512
# Trait names a plugin's CSV export shows as columns, first seen first.
TRAIT_COLUMNS_MAX = 50


@dataclass(frozen=True, slots=True)
class TraitValue:
    """One trait's latest value (any JSON) by event time, then event id (a long id by its digest)."""

    value: Any
    at: int
    event_id: str

    def rank(self) -> tuple[int, str]:
        return (self.at, self.event_id)

    @classmethod
    def kept(cls, value: Any, at: int, event_id: str) -> TraitValue:
        """The value as a profile keeps it: its JSON cut to TRAIT_VALUE_MAX_BYTES, its event id to
        RANK_ID_MAX_CHARS (a digest, the same on every replay)."""
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        if len(text.encode("utf-8", "surrogatepass")) > TRAIT_VALUE_MAX_BYTES:
            cut = text.encode("utf-8", "replace")[: TRAIT_VALUE_MAX_BYTES - 3].decode("utf-8", "ignore")
            value = cut + "…"
        return cls(value, at, rank_id(event_id))


def latest_traits(*maps: dict[str, TraitValue]) -> dict[str, TraitValue]:
    merged: dict[str, TraitValue] = {}
    for traits in maps:
        for name, value in traits.items():
            if name not in merged or value.rank() > merged[name].rank():
                merged[name] = value
    return merged


@dataclass
class ProfileState:
    """What a plugin knows of one id besides its counts."""

    plugin_id: str
    user_id: str
    version: int = 0  # 0: not stored yet
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)  # shard -> (seq, when ms)
    traits: dict[str, TraitValue] = field(default_factory=dict)
    groups: dict[str, dict[str, TraitValue]] = field(default_factory=dict)  # group id -> its traits
    anonymous_ids: list[str] = field(default_factory=list)  # ids linked into this one, first first
    merged_into: str | None = None  # the user this id was linked to (first link wins)
    is_user: bool = False  # it was the user id of an identity call: never linked into another
    first_at: int | None = None  # event times of its identity calls (identify, group, alias, traits)
    last_at: int | None = None
    pending_ids: list[tuple[str, int]] = field(default_factory=list)  # see AggregateState
    updated_at: int = 0
    # How a large profile's parts are stored: (version written at, digest) of each, first first; empty
    # for a profile in one item. Kept by storage (``storage.profile_items``), so a write rewrites only
    # the parts whose bytes changed.
    parts: tuple[tuple[int, str], ...] = ()

    def seen(self, at: int) -> None:
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)


@dataclass(frozen=True, slots=True)
class Person:
    """One person as the dashboard shows them: the id asked for, the user it resolves to, every id
    of that user (its own first), and their combined profile."""

    user_id: str
    ids: tuple[str, ...]
    traits: dict[str, TraitValue]
    groups: dict[str, dict[str, TraitValue]]
    first_at: int | None
    last_at: int | None

    @property
    def anonymous_ids(self) -> list[str]:
        return list(self.ids[1:])


def suppression_hash(user_id: str) -> str:
    """How a suppressed id is kept: its digest, so a plugin's list of forgotten people names nobody."""
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# The suppression filter: a Bloom filter of every suppressed digest, of a fixed size whatever the
# number of suppressions (docs/DESIGN.md, "Suppressions"): 16 KB, 7 positions per digest. It never
# misses a suppressed id; an id it flags is confirmed by a read of that digest's own item.
FILTER_BITS = 16 * 1024 * 8
FILTER_HASHES = 7


def filter_positions(digest: str) -> list[int]:
    """The filter's bits for a suppression digest (32 hex characters: two 64-bit halves, combined
    as double hashing does)."""
    first, second = int(digest[:16], 16), int(digest[16:32], 16) | 1
    return [(first + i * second) % FILTER_BITS for i in range(FILTER_HASHES)]


@dataclass(frozen=True, slots=True)
class SuppressionFilter:
    bits: bytes = bytes(FILTER_BITS // 8)

    def might_hold(self, digest: str) -> bool:
        return all(self.bits[at >> 3] >> (at & 7) & 1 for at in filter_positions(digest))

    def with_digests(self, digests: Iterable[str]) -> SuppressionFilter:
        bits = bytearray(self.bits)
        for digest in digests:
            for at in filter_positions(digest):
                bits[at >> 3] |= 1 << (at & 7)
        return SuppressionFilter(bytes(bits))


@dataclass(frozen=True)
class PeopleLists:
    """A plugin's lists about people, read with its config: who is suppressed, and the trait names
    its profiles hold (the CSV's extra columns).

    Suppressions are one item per digest; the people item holds a filter of them (``filter``), so it
    stays the same size however many people are forgotten. A digest the filter flags is confirmed by
    ``confirm`` (a read of its item), remembered for as long as these lists are (a change to the
    suppressions changes the plugin's stamp, and with it the lists). ``suppressed`` is the exact list
    an older version kept on the people item, still honoured."""

    suppressed: frozenset[str] = frozenset()
    trait_names: tuple[str, ...] = ()
    filter: SuppressionFilter | None = None
    confirm: Callable[[str], bool] | None = field(default=None, compare=False, repr=False)
    confirmed: dict[str, bool] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def has_suppressions(self) -> bool:
        return bool(self.suppressed) or self.filter is not None

    def suppresses(self, *user_ids: str | None) -> bool:
        if not self.has_suppressions:
            return False
        return any(user_id is not None and self._holds(suppression_hash(user_id)) for user_id in user_ids)

    def _holds(self, digest: str) -> bool:
        if digest in self.suppressed:
            return True
        if self.filter is None or not self.filter.might_hold(digest):
            return False
        if self.confirm is None:  # nothing to ask: a flagged id counts as suppressed
            return True
        found = self.confirmed.get(digest)
        if found is None:
            found = self.confirmed[digest] = self.confirm(digest)
        return found


NO_PEOPLE_LISTS = PeopleLists()


def new_deletion_id() -> str:
    return "del_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class PartitionPage:
    """A page of one id's partition of the events table."""

    events: list[CanonicalEvent]  # the events this service named
    named: list[tuple[str, int]]  # (id, event time) of client-named events its index items list
    sort_keys: list[str]  # every item of the page, events and index items
    following: str | None  # where the next page starts, None at the end


@dataclass(frozen=True, slots=True)
class DeletionStep:
    """One step of forgetting ids: each step removes a bounded amount and writes the next, so a
    deletion of any size never outlasts a function's timeout and resumes where it was interrupted."""

    plugin_id: str
    deletion_id: str
    step: int
    user_id: str  # the id asked for
    ids: tuple[str, ...]  # every id of the person being forgotten
    requested_at: int
    position: int = 0  # index into ids
    phase: str = "events"  # events, aggregates (per id), then rejections, sweep, lake, done
    cursor: str | None = None  # where the current phase's listing resumes
    removed_events: int = 0
    removed_aggregates: int = 0
    removed_profiles: int = 0
    removed_rejections: int = 0  # refused calls of the person no longer kept
    removed_lake_rows: int = 0  # the person's rows rewritten out of the lake's files
    suppress: bool = True
    # epoch ms: the final sweep waits until every cache has seen the suppression; the lake's rewrite,
    # until every row of the person stored before the request has reached the lake
    sweep_after: int = 0
    swept: bool = False  # the ids are being gone over a second time
    merged_into: str | None = None  # the user the asked id was linked to (it leaves that user's list)

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def removed(self) -> dict[str, int]:
        """What was removed so far, as a deletion's status reports it."""
        return {
            "events": self.removed_events,
            "aggregates": self.removed_aggregates,
            "profiles": self.removed_profiles,
            "rejections": self.removed_rejections,
            "lake_rows": self.removed_lake_rows,
        }
