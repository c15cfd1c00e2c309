"""The aggregates table in memory: the aggregator's ``Store``, built on storage's own item builders and
version rule (``storage.aggregate_items``), so an item too large or a stale version fails here as it
fails on DynamoDB."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import partial

from devstack.fakes.table import ConditionFailed, Table
from tracking.keys import (
    PROFILE_KIND,
    after_user,
    aggregate_pk,
    days_range,
    funnel_pk,
    profile_sk,
    rollup_pk,
    rollup_sk,
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
    profile_from_item,
    rollup_from_item,
    rollup_item_key,
    user_items_of,
    users_one_by_one,
    versioned,
)
from tracking.storage.dynamo import from_item

ProfileKey = tuple[str, str]


class FakeAggregates:
    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()
        self.conflicts = 0  # writes refused because the item changed since it was read

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
        return (
            found_aggregates,
            self.load_rollups(rollups, shard),
            {key: state for key in profiles if (state := self.get_profile(*key)) is not None},
        )

    def get_aggregate(self, key: AggregateKey) -> AggregateState | None:
        item = self.table.get(_key(aggregate_item_key(key)))
        return aggregate_from_item(item) if item is not None else None

    def get_profile(self, plugin_id: str, user_id: str) -> ProfileState | None:
        item = self.table.get((aggregate_pk(plugin_id), profile_sk(user_id)))
        return profile_from_item(item) if item is not None else None

    def has_been_user(self, plugin_id: str, user_id: str) -> bool:
        for item in self.table.query(aggregate_pk(plugin_id), user_prefix(user_id)):
            values = from_item(item)
            if values.get("as_user") or values.get("is_user") or "anonymous_ids" in values:
                return True
        return False

    def load_funnels(self, keys: Iterable[ProfileKey]) -> dict[ProfileKey, FunnelState]:
        return {key: state for key in keys if (state := self.get_funnel(*key)) is not None}

    def get_funnel(self, plugin_id: str, user_id: str) -> FunnelState | None:
        item = self.table.get((funnel_pk(plugin_id), user_id))
        return funnel_from_item(item) if item is not None else None

    def load_rollups(self, rollups: Iterable[RollupKey], shard: str) -> dict[RollupKey, RollupState]:
        return {
            rollup: rollup_from_item(item)
            for rollup in rollups
            if (item := self.table.get(_key(rollup_item_key(rollup, shard)))) is not None
        }

    def save(self, state: AggregateState | RollupState | ProfileState | FunnelState) -> None:
        with versioned(state) as (item, expected):
            try:
                if expected == 0:
                    self.table.put(item, if_absent=True)
                else:
                    self.table.put(item, if_version=expected)
            except ConditionFailed as exc:
                self.conflicts += 1
                raise Conflict(f"{item['pk']['S']!r} {item['sk']['S']!r} changed since it was read") from exc

    # -- what deletion reads and removes ----------------------------------------------------------

    def user_items(self, plugin_id: str, user_id: str) -> UserItems:
        return user_items_of(self.table.query(aggregate_pk(plugin_id), user_prefix(user_id)))

    def delete_user_items(self, plugin_id: str, user_id: str, limit: int) -> tuple[int, int, bool]:
        items, more = self.table.page(aggregate_pk(plugin_id), prefix=user_prefix(user_id), limit=limit)
        for item in items:
            self.table.delete(self.table.key_of(item))
        if not more:  # the last of them: its funnel item goes too
            self.table.delete((funnel_pk(plugin_id), user_id))
        profiles = sum(1 for item in items if item.get("kind", {}).get("S") == PROFILE_KIND)
        return len(items) - profiles, profiles, more

    # -- what the dashboard reads --------------------------------------------------------------------

    def page_of_users(self, plugin_id: str, after: str | None, max_items: int) -> UsersPage:
        start = after_user(after) if after is not None else None
        items, more = self.table.page(aggregate_pk(plugin_id), after=start, limit=max_items)
        return page_of_user_items(items, more, partial(self.user_items, plugin_id))

    def users(self, plugin_id: str, after: str | None = None) -> Iterator[UsersPage]:
        start = after_user(after) if after is not None else None
        items, _ = self.table.page(aggregate_pk(plugin_id), after=start)
        yield from users_one_by_one(items)

    def rollups(
        self, plugin_id: str, first_day: str, last_day: str, keys: Sequence[str] | None = None
    ) -> list[RollupState]:
        first, last = days_range(first_day, last_day)
        found = (rollup_from_item(item) for item in self.table.query(rollup_pk(plugin_id)))
        return [
            rollup
            for rollup in found
            if first <= rollup_sk(rollup.day, rollup.key, rollup.group, rollup.shard) <= last
            and (keys is None or rollup.key in keys)
        ]

    def has_rollups(self, plugin_id: str) -> bool:
        return bool(self.table.query(rollup_pk(plugin_id)))

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
