"""The aggregates table in memory: the aggregator's ``Store``, built on storage's own item builders and
version rule (``storage.aggregate_items``), so an item too large or a stale version fails here as it
fails on DynamoDB."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from devstack.fakes.table import ConditionFailed, Table
from tracking.keys import (
    aggregate_pk,
    aggregates_pk,
    day_rollups_pk,
    funnel_pk,
    rollups_pk,
    suffixes_key,
    user_prefix,
)
from tracking.models.aggregates import (
    AggregateKey,
    AggregateState,
    RollupKey,
    RollupState,
    UserItems,
    UsersPage,
)
from tracking.models.funnel import FunnelState
from tracking.models.people import ProfileState
from tracking.models.storage_failures import Conflict
from tracking.storage.aggregate_items import (
    aggregate_from_item,
    aggregate_item_key,
    funnel_from_item,
    page_of_user_items,
    removed_counts,
    suffix_of,
    user_items_of,
    users_one_by_one,
    versioned,
)
from tracking.storage.dynamo import from_item
from tracking.storage.profile_items import part_keys, profile_from_items, profile_key
from tracking.storage.rollup_items import (
    DAY_COUNTERS,
    day_rollup_item,
    day_rollup_key,
    is_compactable,
    rollup_from_item,
    rollup_item_key,
    rollup_to_item,
)
from tracking.storage.spread import Suffixes, SuffixRecorder, suffix_starts, walk_users

ProfileKey = tuple[str, str]
Item = dict[str, Any]


class FakeAggregates:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table if table is not None else Table()
        self.conflicts = 0  # writes refused because the item changed since it was read
        self.page_waves: list[int] = []  # round trips of each page of users read
        self._suffixes = SuffixRecorder(self.suffixes, self._add_suffixes)

    def suffixes(self, plugin_id: str) -> Suffixes:
        key = suffixes_key(plugin_id)
        item = self.table.get((key["pk"], key["sk"]))
        return Suffixes.of(from_item(item)) if item is not None else Suffixes()

    def load(
        self,
        aggregates: Sequence[AggregateKey],
        rollups: Sequence[RollupKey],
        shard: str,
        profiles: Sequence[ProfileKey] = (),
    ) -> tuple[
        dict[AggregateKey, AggregateState], dict[RollupKey, RollupState], dict[ProfileKey, ProfileState]
    ]:
        found_aggregates = {
            key: aggregate_from_item(item)
            for key in aggregates
            if (item := self.table.get(_key(aggregate_item_key(key)), consistent=False)) is not None
        }
        found_rollups = self.load_rollups(rollups, shard)
        found_profiles = {key: state for key in profiles if (state := self.get_profile(*key)) is not None}
        self._suffixes.record_missing(
            (key for key in aggregates if key not in found_aggregates),
            (key for key in rollups if key not in found_rollups),
            shard,
            (key for key in profiles if key not in found_profiles),
        )
        return found_aggregates, found_rollups, found_profiles

    def get_aggregate(self, key: AggregateKey) -> AggregateState | None:
        item = self.table.get(_key(aggregate_item_key(key)))
        return aggregate_from_item(item) if item is not None else None

    def get_profile(self, plugin_id: str, user_id: str) -> ProfileState | None:
        """The profile and its parts, at once (as the store's transaction reads them)."""
        item = self.table.get(_key(profile_key(plugin_id, user_id)))
        if item is None:
            return None
        parts = [part for key in part_keys(item) if (part := self.table.get(_key(key))) is not None]
        return profile_from_items(item, parts)

    def has_been_user(self, plugin_id: str, user_id: str) -> bool:
        for item in self.table.query(aggregate_pk(plugin_id, user_id), user_prefix(user_id)):
            values = from_item(item)
            if (
                values.get("as_user")
                or values.get("is_user")
                or "anonymous_ids" in values
                or values.get("linked")
            ):
                return True
        return False

    def load_funnels(self, keys: Iterable[ProfileKey]) -> dict[ProfileKey, FunnelState]:
        return {key: state for key in keys if (state := self.get_funnel(*key)) is not None}

    def get_funnel(self, plugin_id: str, user_id: str) -> FunnelState | None:
        item = self.table.get((funnel_pk(plugin_id, user_id), user_id))
        return funnel_from_item(item) if item is not None else None

    def load_rollups(self, rollups: Iterable[RollupKey], shard: str) -> dict[RollupKey, RollupState]:
        return {
            rollup: rollup_from_item(item)
            for rollup in rollups
            if (item := self.table.get(_key(rollup_item_key(rollup, shard)))) is not None
        }

    def save(self, state: AggregateState | RollupState | ProfileState | FunnelState) -> None:
        with versioned(state) as (write, expected):
            item = write.item
            try:
                if expected == 0:
                    self._suffixes.record_one(state.plugin_id, suffix_of(state))
                    self.table.put(item, if_absent=True)
                else:
                    self.table.put(item, if_version=expected)
            except ConditionFailed as exc:
                self.conflicts += 1
                raise Conflict(f"{item['pk']['S']!r} {item['sk']['S']!r} changed since it was read") from exc
            if write.parts:  # with it, as the store's transaction does (its price: twice the units)
                self.table.put_all(write.parts)
            for key in write.stale:
                self.table.delete(_key(key))

    def _add_suffixes(self, plugin_id: str, users: list[int], rollups: list[int]) -> Suffixes:
        key = suffixes_key(plugin_id)
        self.table.add_numbers((key["pk"], key["sk"]), {"users": users, "rollups": rollups})
        return Suffixes.of(from_item(self.table.peek((key["pk"], key["sk"])) or {}))

    # -- what deletion reads and removes ----------------------------------------------------------

    def user_items(self, plugin_id: str, user_id: str) -> UserItems:
        items = self.table.query(aggregate_pk(plugin_id, user_id), user_prefix(user_id))
        return user_items_of(items, self.get_profile)

    def delete_user_items(self, plugin_id: str, user_id: str, limit: int) -> tuple[int, int, bool]:
        pk = aggregate_pk(plugin_id, user_id)
        items, more = self.table.page(pk, prefix=user_prefix(user_id), limit=limit)
        for item in items:
            self.table.delete(self.table.key_of(item))
        if not more:  # the last of them: its funnel item goes too
            self.table.delete((funnel_pk(plugin_id, user_id), user_id))
        return (*removed_counts(items), more)

    # -- what the dashboard reads --------------------------------------------------------------------

    def page_of_users(self, plugin_id: str, after: str | None, max_items: int) -> UsersPage:
        def read(suffix: int, start: str | None, limit: int) -> tuple[list[Item], bool]:
            return self.table.page(aggregates_pk(plugin_id, suffix), after=start, limit=limit)

        walked = walk_users(after, max_items, read, lambda: self.suffixes(plugin_id).users)
        self.page_waves.append(walked.waves)
        return page_of_user_items(
            walked.items, walked.more, partial(self.user_items, plugin_id), self.get_profile
        )

    def users(self, plugin_id: str, after: str | None = None) -> Iterator[UsersPage]:
        for suffix, start in suffix_starts(self.suffixes(plugin_id).users, after):
            items = self.table.page(aggregates_pk(plugin_id, suffix), after=start)[0]
            yield from users_one_by_one(items, self.get_profile)

    def rollups(
        self, plugin_id: str, first_day: str, last_day: str, keys: Sequence[str] | None = None
    ) -> list[RollupState]:
        found = [
            rollup_from_item(item)
            for suffix in self.suffixes(plugin_id).rollups
            for item in self.table.query(rollups_pk(plugin_id, suffix))
        ]
        found += [rollup_from_item(item) for item in self.table.query(day_rollups_pk(plugin_id))]
        return [
            rollup
            for rollup in found
            if first_day <= rollup.day <= last_day and (keys is None or rollup.key in keys)
        ]

    def compact_rollups(self, plugin_id: str, before_day: str, idle_before: int, limit: int) -> int:
        folded = 0
        for suffix in self.suffixes(plugin_id).rollups:
            for item in self.table.query(rollups_pk(plugin_id, suffix)):
                state = rollup_from_item(item)
                if folded < limit and is_compactable(state, before_day, idle_before):
                    self._fold_into_day(state)
                    folded += 1
        return folded

    def _fold_into_day(self, state: RollupState) -> None:
        """As the store's transaction: the shard's rollup goes, its counters add to its day's item."""
        key = _key(day_rollup_key(state))
        stored = self.table.get(key)
        day = rollup_from_item(stored) if stored else replace(state, shard="", seq=-1, written_at=0)
        if stored:
            for name in DAY_COUNTERS:
                setattr(day, name, getattr(day, name) + getattr(state, name))
        self.table.delete(self.table.key_of(rollup_to_item(state)))
        self.table.put(day_rollup_item(day))

    def has_rollups(self, plugin_id: str) -> bool:
        return bool(self.suffixes(plugin_id).rollups)

    # -- for tests ----------------------------------------------------------------------------------

    def stored(self) -> list[AggregateState]:
        """Every aggregate in the table (profiles, funnels and rollups left out)."""
        return [
            aggregate_from_item(item)
            for item in self.table.all_items()
            if "key" in item and "kind" not in item and "day" not in item
        ]


def _key(item_key: dict[str, dict[str, str]]) -> tuple[str, str]:
    return item_key["pk"]["S"], item_key["sk"]["S"]
