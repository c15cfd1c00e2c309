"""The aggregates table: one item per (plugin, key, user) and per-shard daily rollups.

Layout (``tracking.keys``): a plugin's aggregates spread over suffixed partitions by a hash of the
user, sorted by user then key within each, so one user's items are one query and a page of rows is a
wave or two of parallel queries (``storage.spread``); its rollups spread by a hash of the shard, sorted
by day, so a date range is one parallel query per suffix used. Every write is a conditional put on
the item's version (optimistic concurrency); the first item of a suffix records the suffix first.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from tracking.keys import (
    aggregate_pk,
    aggregates_pk,
    funnel_pk,
    profile_sk,
    suffixes_key,
    user_prefix,
)
from tracking.models.aggregates import AggregateKey, AggregateState, RollupKey, RollupState, UsersPage
from tracking.models.funnel import FunnelState
from tracking.models.people import ProfileState
from tracking.models.storage_failures import Conflict, StorageUnavailable
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
from tracking.storage.dynamo import (
    AttributeValue,
    Workers,
    batch_delete,
    batch_get,
    cancellation_codes,
    error_code,
    from_item,
    query,
    query_all,
    storage_errors,
    to_attr,
    to_item,
)
from tracking.storage.profile_items import ItemsWrite, part_keys, profile_from_items, profile_key
from tracking.storage.rollup_items import (
    rollup_from_item,
    rollup_item_key,
)
from tracking.storage.rollups import RollupStore
from tracking.storage.spread import Suffixes, SuffixRecorder, suffix_starts, walk_users

PROFILE_READ_ATTEMPTS = 3
PARALLEL_QUERIES = 64  # the client's connections (storage.dynamo.CLIENT_CONFIG)


class AggregateStore:
    def __init__(self, client: Any, table: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._table = table
        self._sleep = sleep
        self._suffixes = SuffixRecorder(self.suffixes, self._add_suffixes)
        self._parallel = Workers(PARALLEL_QUERIES, "read-suffixes").map
        self._rollups = RollupStore(client, table, self._parallel)

    def suffixes(self, plugin_id: str) -> Suffixes:
        """Which of the plugin's suffixes hold items (read consistently: a listing must not miss one
        recorded a moment ago)."""
        with storage_errors("read aggregates"):
            answer = self._client.get_item(
                TableName=self._table, Key=to_item(suffixes_key(plugin_id)), ConsistentRead=True
            )
        return Suffixes.of(from_item(answer["Item"])) if "Item" in answer else Suffixes()

    def record_suffixes_of(self, items: Iterable[dict[str, AttributeValue]]) -> None:
        """List the suffixes of items written in bulk (a migration, a test's or benchmark's data)."""
        self._suffixes.record_items(items)

    def _add_suffixes(self, plugin_id: str, users: list[int], rollups: list[int]) -> Suffixes:
        """Add suffixes to the plugin's list (adding one twice changes nothing): the list as it is now."""
        adds = {name: numbers for name, numbers in (("users", users), ("rollups", rollups)) if numbers}
        with storage_errors("write aggregate"):
            answer = self._client.update_item(
                TableName=self._table,
                Key=to_item(suffixes_key(plugin_id)),
                UpdateExpression="ADD " + ", ".join(f"#{name} :{name}" for name in adds),
                ExpressionAttributeNames={f"#{name}": name for name in adds},
                ExpressionAttributeValues={
                    f":{name}": {"NS": [str(n) for n in numbers]} for name, numbers in adds.items()
                },
                ReturnValues="ALL_NEW",
            )
        return Suffixes.of(from_item(answer["Attributes"]))

    def load(
        self,
        aggregates: Iterable[AggregateKey],
        rollups: Iterable[RollupKey],
        shard: str,
        profiles: Iterable[tuple[str, str]] = (),
    ) -> tuple[
        dict[AggregateKey, AggregateState], dict[RollupKey, RollupState], dict[tuple[str, str], ProfileState]
    ]:
        """The stored states of these aggregates, of this shard's rollups and of these (plugin, id)
        profiles (missing ones absent), in as few requests as BatchGetItem allows.

        Aggregates are read eventually consistently (half the price): every write of one is
        conditional on the version read, so a stale copy only costs a conflict and a consistent
        re-read. Rollups and profiles, whose writers decide from what they read (links), are read
        consistently."""
        wanted: dict[tuple[str, str], tuple[str, Any]] = {}
        for key in aggregates:
            item_key = aggregate_item_key(key)
            wanted[(item_key["pk"]["S"], item_key["sk"]["S"])] = ("aggregate", key)
        for rollup in rollups:
            item_key = rollup_item_key(rollup, shard)
            wanted[(item_key["pk"]["S"], item_key["sk"]["S"])] = ("rollup", rollup)
        for plugin_id, user_id in profiles:
            wanted[(aggregate_pk(plugin_id, user_id), profile_sk(user_id))] = (
                "profile",
                (plugin_id, user_id),
            )
        found_aggregates: dict[AggregateKey, AggregateState] = {}
        found_rollups: dict[RollupKey, RollupState] = {}
        found_profiles: dict[tuple[str, str], ProfileState] = {}
        eventual = [
            {"pk": {"S": pk}, "sk": {"S": sk}}
            for (pk, sk), (kind, _) in wanted.items()
            if kind == "aggregate"
        ]
        consistent = [
            {"pk": {"S": pk}, "sk": {"S": sk}}
            for (pk, sk), (kind, _) in wanted.items()
            if kind != "aggregate"
        ]
        found = itertools.chain(self._batch_get(eventual, consistent=False), self._batch_get(consistent))
        missing = dict(wanted)
        for item in found:
            kind, key = missing.pop((item["pk"]["S"], item["sk"]["S"]))
            if kind == "aggregate":
                found_aggregates[key] = aggregate_from_item(item)
            elif kind == "rollup":
                found_rollups[key] = rollup_from_item(item)
            elif (profile := self._profile_of(item)) is not None:
                found_profiles[key] = profile
        self._suffixes.record_missing(
            (key for kind, key in missing.values() if kind == "aggregate"),
            (key for kind, key in missing.values() if kind == "rollup"),
            shard,
            (key for kind, key in missing.values() if kind == "profile"),
        )
        return found_aggregates, found_rollups, found_profiles

    def _batch_get(
        self, keys: list[dict[str, AttributeValue]], consistent: bool = True
    ) -> list[dict[str, AttributeValue]]:
        return batch_get(
            self._client, self._table, keys, "read aggregates", self._sleep, consistent=consistent
        )

    def get_aggregate(self, key: AggregateKey) -> AggregateState | None:
        with storage_errors("read aggregate"):
            answer = self._client.get_item(
                TableName=self._table, Key=aggregate_item_key(key), ConsistentRead=True
            )
        return aggregate_from_item(answer["Item"]) if "Item" in answer else None

    def load_funnels(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], FunnelState]:
        """The stored funnel items of these (plugin, user) pairs, read eventually consistently (half the
        price): as an aggregate's, a funnel item's write is conditional on the version read, so a
        stale copy only costs a conflict and a consistent re-read (``get_funnel``)."""
        wanted = [
            to_item({"pk": funnel_pk(plugin_id, user_id), "sk": user_id}) for plugin_id, user_id in keys
        ]
        found = (funnel_from_item(item) for item in self._batch_get(wanted, consistent=False))
        return {(state.plugin_id, state.user_id): state for state in found}

    def load_rollups(self, rollups: Iterable[RollupKey], shard: str) -> dict[RollupKey, RollupState]:
        """This shard's stored rollups among these (missing ones absent)."""
        found = (
            rollup_from_item(item) for item in self._batch_get([rollup_item_key(r, shard) for r in rollups])
        )
        return {(state.plugin_id, state.day, state.key, state.group): state for state in found}

    def get_funnel(self, plugin_id: str, user_id: str) -> FunnelState | None:
        with storage_errors("read funnel"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=to_item({"pk": funnel_pk(plugin_id, user_id), "sk": user_id}),
                ConsistentRead=True,
            )
        return funnel_from_item(answer["Item"]) if "Item" in answer else None

    def get_profile(self, plugin_id: str, user_id: str) -> ProfileState | None:
        with storage_errors("read profile"):
            answer = self._client.get_item(
                TableName=self._table, Key=profile_key(plugin_id, user_id), ConsistentRead=True
            )
        return self._profile_of(answer["Item"]) if "Item" in answer else None

    def _profile_of(self, item: dict[str, AttributeValue]) -> ProfileState | None:
        """The profile of its item, read consistently, with its parts if it has any: read with the item
        again in one transaction, so that they are the ones it lists (None: deleted meanwhile)."""
        for _ in range(PROFILE_READ_ATTEMPTS):
            keys = part_keys(item)
            if not keys:
                return profile_from_items(item)
            with storage_errors("read profile"):
                answer = self._client.transact_get_items(
                    TransactItems=[
                        {"Get": {"TableName": self._table, "Key": key}}
                        for key in [{"pk": item["pk"], "sk": item["sk"]}, *keys]
                    ]
                )
            found = [response.get("Item") for response in answer["Responses"]]
            if found[0] is None:
                return None
            item = found[0]
            profile = profile_from_items(item, [part for part in found[1:] if part is not None])
            if profile is not None:
                return profile
            # it lists other parts than those read with it (rewritten in between): read those
        raise StorageUnavailable("A profile kept changing while it was read; retry later")

    def save(self, state: AggregateState | RollupState | ProfileState | FunnelState) -> None:
        """Write ``state`` as the next version of its item, if nobody else did in between."""
        with versioned(state) as (write, expected):
            item = write.item
            if expected == 0:
                self._suffixes.record_one(state.plugin_id, suffix_of(state))  # if load did not
                condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            else:
                condition = {
                    "ConditionExpression": "version = :expected",
                    "ExpressionAttributeValues": {":expected": to_attr(expected)},
                }
            try:
                with storage_errors("write aggregate"):
                    if write.alone:
                        self._client.put_item(TableName=self._table, Item=item, **condition)
                    else:
                        self._client.transact_write_items(TransactItems=self._with_parts(write, condition))
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException" or (
                    "ConditionalCheckFailed" in cancellation_codes(exc)
                ):
                    where = f"{item['pk']['S']!r} {item['sk']['S']!r}"
                    raise Conflict(f"{where} changed since it was read") from exc
                raise

    def _with_parts(self, write: ItemsWrite, condition: dict[str, Any]) -> list[dict[str, Any]]:
        """A large profile's write: its item on its condition, its changed parts and its stale ones."""
        return [
            {"Put": {"TableName": self._table, "Item": write.item, **condition}},
            *({"Put": {"TableName": self._table, "Item": part}} for part in write.parts),
            *({"Delete": {"TableName": self._table, "Key": key}} for key in write.stale),
        ]

    def has_been_user(self, plugin_id: str, user_id: str) -> bool:
        """Whether any item of the id says it has been a user: an aggregate counting an event that named
        it as its user, or its profile (a user's identity call, or ids linked to it). Read only when a
        link would make the id part of another user: the id's items, until the first that says so."""
        condition = "pk = :pk AND begins_with(sk, :user)"
        values = {":pk": aggregate_pk(plugin_id, user_id), ":user": user_prefix(user_id), ":yes": True}
        start: dict[str, Any] = {}
        while True:
            answer = query(
                self._client,
                self._table,
                condition,
                values,
                "read aggregates",
                ConsistentRead=True,
                FilterExpression=(
                    "as_user = :yes OR is_user = :yes OR attribute_exists(anonymous_ids) OR linked = :yes"
                ),
                ProjectionExpression="sk",
                **start,
            )
            if answer.get("Items"):
                return True
            if "LastEvaluatedKey" not in answer:
                return False
            start = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}

    def user_items(self, plugin_id: str, user_id: str) -> tuple[list[AggregateState], ProfileState | None]:
        """Every aggregate of one id of a plugin, and its profile (one query, more only past 1 MB)."""
        condition = "pk = :pk AND begins_with(sk, :user)"
        values = {":pk": aggregate_pk(plugin_id, user_id), ":user": user_prefix(user_id)}
        items = query_all(self._client, self._table, condition, values, "read aggregates")
        return user_items_of(items, self.get_profile)

    def page_of_users(self, plugin_id: str, after: str | None, max_items: int) -> UsersPage:
        """Aggregates and profiles of the users after ``after``, in (suffix, user) order: about
        ``max_items`` items, in a wave or two of parallel queries (``spread.walk_users``). Users whose
        items a query cut off are left for the next page."""

        def read(suffix: int, start: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
            condition, values = self._suffix_query(plugin_id, suffix, start)
            answer = query(self._client, self._table, condition, values, "read aggregates", Limit=limit)
            return answer.get("Items", []), "LastEvaluatedKey" in answer

        walked = walk_users(after, max_items, read, lambda: self.suffixes(plugin_id).users, self._parallel)
        return page_of_user_items(
            walked.items, walked.more, partial(self.user_items, plugin_id), self.get_profile
        )

    def users(self, plugin_id: str, after: str | None = None) -> Iterator[UsersPage]:
        """Every user after ``after`` with their aggregates and profile, one user at a time in
        (suffix, user) order, reading each item once."""
        for suffix, start in suffix_starts(self.suffixes(plugin_id).users, after):
            condition, values = self._suffix_query(plugin_id, suffix, start)
            yield from users_one_by_one(
                query_all(self._client, self._table, condition, values, "read aggregates"), self.get_profile
            )

    @staticmethod
    def _suffix_query(plugin_id: str, suffix: int, start: str | None) -> tuple[str, dict[str, Any]]:
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": aggregates_pk(plugin_id, suffix)}
        if start is not None:
            condition += " AND sk >= :next"
            values[":next"] = start
        return condition, values

    def delete_user_items(self, plugin_id: str, user_id: str, limit: int) -> tuple[int, int, bool]:
        """Delete up to ``limit`` of one id's aggregates and profile: (aggregates, profiles) removed and
        whether any are left."""
        condition = "pk = :pk AND begins_with(sk, :user)"
        values = {":pk": aggregate_pk(plugin_id, user_id), ":user": user_prefix(user_id)}
        answer = query(self._client, self._table, condition, values, "read aggregates", Limit=limit)
        items = answer.get("Items", [])
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items]
        if "LastEvaluatedKey" not in answer:  # the last of them: its funnel item goes too
            keys.append(to_item({"pk": funnel_pk(plugin_id, user_id), "sk": user_id}))
        batch_delete(self._client, self._table, keys, self._sleep)
        return (*removed_counts(items), "LastEvaluatedKey" in answer)

    def rollups(
        self, plugin_id: str, first_day: str, last_day: str, keys: Sequence[str] | None = None
    ) -> list[RollupState]:
        """The rollups of the plugin for the days ``first_day``..``last_day`` (``storage.rollups``)."""
        return self._rollups.read(plugin_id, self.suffixes(plugin_id).rollups, first_day, last_day, keys)

    def compact_rollups(self, plugin_id: str, before_day: str, idle_before: int, limit: int) -> int:
        """Fold idle shards' rollups of days over into their days' items (``storage.rollups``)."""
        suffixes = self.suffixes(plugin_id).rollups
        return self._rollups.compact(plugin_id, suffixes, before_day, idle_before, limit)

    def has_rollups(self, plugin_id: str) -> bool:
        return bool(self.suffixes(plugin_id).rollups)
