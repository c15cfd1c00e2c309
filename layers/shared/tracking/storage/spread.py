"""Reading what is spread over key suffixes (``tracking.keys``: a plugin's per-user items over
``USER_SUFFIXES`` partitions, its rollups over ``ROLLUP_SUFFIXES``), the same way whatever stores it.

Listings read only the suffixes that hold items: the plugin's suffixes item says which (its writer
adds a suffix before the suffix's first item). A page of users walks the suffixes in order, users in
order within each, so a cursor is still one user (its suffix follows from its hash); it reads in
waves of parallel queries, each wave as wide as the density seen so far says the page still needs:
a page is one wave on a busy plugin (the first suffix fills it), two on a small one (the rest at once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from tracking.keys import USER_SUFFIXES, after_user, rollup_suffix, spread_pk_parts, user_suffix

Item = dict[str, Any]
T = TypeVar("T")
R = TypeVar("R")
# Reads one suffix: (suffix, start after this sort key or None, at most this many items) ->
# (items, whether the suffix holds more).
ReadSuffix = Callable[[int, str | None, int], tuple[list[Item], bool]]
# Runs the reads of one wave (in parallel where the store can): what a map returns, in order.
Parallel = Callable[[Callable[[T], R], Sequence[T]], list[R]]

MAX_WAVE = 256  # queries in one wave at most (4 deep on the 64 connections the client keeps)
HEADROOM = 2.0  # a wave reads this much more than the density seen so far says it needs


@dataclass
class Suffixes:
    """Which suffixes of a plugin hold items, as its suffixes item lists them."""

    users: list[int] = field(default_factory=list)
    rollups: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, values: dict[str, Any]) -> Suffixes:
        return cls(
            users=sorted(int(n) for n in values.get("users", ())),
            rollups=sorted(int(n) for n in values.get("rollups", ())),
        )


def serial(function: Callable[[T], R], arguments: Sequence[T]) -> list[R]:
    return [function(argument) for argument in arguments]


def suffix_starts(used: Sequence[int], after: str | None) -> list[tuple[int, str | None]]:
    """Every suffix a walk of all users after ``after`` reads, in order, with the sort key its query
    starts at (only the cursor's own suffix starts past its beginning)."""
    if after is None:
        return [(n, None) for n in used]
    first = user_suffix(after)
    return [(first, after_user(after))] + [(n, None) for n in used if n > first]


def _read_from_start(read: ReadSuffix, limit: int, suffix: int) -> tuple[list[Item], bool]:
    return read(suffix, None, limit)


@dataclass
class Walked:
    items: list[Item]
    more: bool  # items after these remain
    waves: int  # round trips of parallel queries it took


def walk_users(
    after: str | None,
    max_items: int,
    read: ReadSuffix,
    list_used: Callable[[], Sequence[int]],
    parallel: Parallel[Any, Any] = serial,
) -> Walked:
    """Items of the users after ``after`` in (suffix, user) order, at least ``max_items`` of them if
    there are (whole suffixes past that are kept too); ``more`` when a suffix was cut short or
    suffixes are left. ``list_used()`` reads which suffixes hold items, in the first wave beside
    the cursor's suffix and the one after it (the first page's: suffix 0, which a plugin with many
    users uses)."""
    first = user_suffix(after) if after is not None else 0
    jobs: list[tuple[int, str | None]] = [(first, after_user(after) if after is not None else None)]
    if after is not None and first + 1 < USER_SUFFIXES:
        # A whole suffix beside the rest of the cursor's (read speculatively: unused, it holds
        # nothing): the density's sample, so a busy plugin's next wave is never sized on nothing.
        jobs.append((first + 1, None))

    def first_wave(job: tuple[int, str | None] | None) -> Any:
        return list_used() if job is None else read(job[0], job[1], max_items)

    used, *answers = parallel(first_wave, [None, *jobs])
    pending = [n for n in used if n > jobs[-1][0]]
    items: list[Item] = []
    # Whole suffixes read that hold items (suffix 0 or the speculative one may hold none).
    sampled = sum(1 for n, start in jobs if start is None and n in used)
    waves = 1
    while True:
        for items_read, more in answers:
            items += items_read
            if more:  # cut short: the page ends inside this suffix
                return Walked(items, True, waves)
        if len(items) >= max_items or not pending:
            return Walked(items, bool(pending), waves)
        # Items per suffix, as seen so far and pulled down (one suffix seen is a noisy sample): a wave
        # too wide reads a little more, one too narrow costs a round trip.
        density = len(items) / (sampled + 1)
        wanted = max_items - len(items)
        width = max(1, min(math.ceil(wanted / max(density, 0.5) * HEADROOM), MAX_WAVE))
        wave, pending = pending[:width], pending[width:]
        answers = parallel(partial(_read_from_start, read, wanted), wave)
        sampled += len(wave)
        waves += 1


class SuffixRecorder:
    """Lists the suffixes of items about to be created on the plugin's suffixes item, before they are
    written: per container, the item is read once per plugin, and each write (all new suffixes of a
    batch in one) returns the item as it now is, so a container writes it again only for suffixes
    that no container had listed when it last looked. In a plugin's life that is a few writes per
    container, and none once every suffix is listed."""

    def __init__(
        self,
        read: Callable[[str], Suffixes],
        add: Callable[[str, list[int], list[int]], Suffixes],
    ) -> None:
        self._read = read
        self._add = add
        self._known: dict[str, Suffixes] = {}

    def record_missing(
        self,
        aggregates: Iterable[tuple[str, str, str]],
        rollups: Iterable[tuple[str, str, str, str]],
        shard: str,
        profiles: Iterable[tuple[str, str]],
    ) -> None:
        """Before a batch writes: list the suffixes of the items a load did not find (keys as the
        aggregator names them: aggregates (plugin, key, user), rollups (plugin, day, key, group))."""
        wanted: dict[str, tuple[set[int], set[int]]] = {}
        for plugin_id, _, user_id in aggregates:
            wanted.setdefault(plugin_id, (set(), set()))[0].add(user_suffix(user_id))
        for plugin_id, user_id in profiles:
            wanted.setdefault(plugin_id, (set(), set()))[0].add(user_suffix(user_id))
        for plugin_id, *_ in rollups:
            wanted.setdefault(plugin_id, (set(), set()))[1].add(rollup_suffix(shard))
        for plugin_id, (users, rollup_suffixes) in wanted.items():
            self.record(plugin_id, users, rollup_suffixes)

    def record_items(self, items: Iterable[Item]) -> None:
        """List the suffixes of items written some other way than one at a time (a bulk load)."""
        wanted: dict[str, tuple[set[int], set[int]]] = {}
        for item in items:
            if parts := spread_pk_parts(item["pk"]["S"]):
                kind, plugin_id, number = parts
                wanted.setdefault(plugin_id, (set(), set()))[0 if kind == "users" else 1].add(number)
        for plugin_id, (users, rollups) in wanted.items():
            self.record(plugin_id, users, rollups)

    def record_one(self, plugin_id: str, suffix: tuple[str, int] | None) -> None:
        """The suffix of one first item (``aggregate_items.suffix_of``), if no load listed it."""
        if suffix is not None:
            kind, number = suffix
            self.record(plugin_id, [number] if kind == "users" else [], [number] if kind == "rollups" else [])

    def record(self, plugin_id: str, users: Iterable[int], rollups: Iterable[int]) -> None:
        known = self._known.get(plugin_id)
        if known is None:
            known = self._known[plugin_id] = self._read(plugin_id)
        new_users = sorted(set(users) - set(known.users))
        new_rollups = sorted(set(rollups) - set(known.rollups))
        if new_users or new_rollups:
            self._known[plugin_id] = self._add(plugin_id, new_users, new_rollups)
