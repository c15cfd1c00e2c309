"""The aggregates table: one item per (plugin, key, user) and per-shard daily rollups.

Layout (``tracking.keys``): a plugin's aggregates under one partition, sorted by user then key, so one
plugin's users sort together and a page of rows is one query; its rollups under another, sorted by day,
so a date range is one query. Every write is a conditional put on the item's version (optimistic concurrency).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from tracking.compact import dumps_compact
from tracking.keys import (
    FUNNEL_KIND,
    PROFILE_KIND,
    after_user,
    aggregate_pk,
    aggregate_sk,
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
    Entry,
    Latest,
    RollupKey,
    RollupState,
    UsersPage,
)
from tracking.models.failures import Conflict, ItemTooLarge, StorageUnavailable
from tracking.models.funnel import FunnelState
from tracking.models.people import ProfileState, TraitValue
from tracking.storage.dynamo import (
    AttributeValue,
    batch_delete,
    check_size,
    error_code,
    from_item,
    query,
    storage_errors,
    to_attr,
    to_item,
)

BATCH_GET_MAX = 100
UNPROCESSED_RETRIES = 6


def funnel_to_item(state: FunnelState) -> dict[str, AttributeValue]:
    values: dict[str, Any] = {
        "pk": funnel_pk(state.plugin_id),
        "sk": state.user_id,
        "kind": FUNNEL_KIND,
        "plugin_id": state.plugin_id,
        "user_id": state.user_id,
        "version": state.version,
        "updated_at": state.updated_at,
        "applied": {shard: [str(seq), when] for shard, (seq, when) in state.applied.items()},
        "done": state.done,
        "entered_at": state.entered_at,
    }
    if state.recent:
        values["recent"] = [
            [shard, str(seq), when, [list(change) for change in changes]]
            for (shard, seq), (when, changes) in state.recent.items()
        ]
    return to_item(values)


def funnel_from_item(item: dict[str, AttributeValue]) -> FunnelState:
    values = from_item(item)
    return FunnelState(
        plugin_id=values["plugin_id"],
        user_id=values["user_id"],
        version=int(values["version"]),
        applied={shard: (int(seq), int(when)) for shard, (seq, when) in values.get("applied", {}).items()},
        updated_at=int(values.get("updated_at", 0)),
        entered_at=_optional_int(values.get("entered_at")),
        done=int(values.get("done", 0)),
        recent={
            (shard, int(seq)): (int(when), tuple((str(d), int(n), int(c)) for d, n, c in changes))
            for shard, seq, when, changes in values.get("recent", [])
        },
    )


def _aggregate_item_key(key: AggregateKey) -> dict[str, AttributeValue]:
    plugin_id, name, user_id = key
    return to_item({"pk": aggregate_pk(plugin_id), "sk": aggregate_sk(user_id, name)})


def _rollup_item_key(key: RollupKey, shard: str) -> dict[str, AttributeValue]:
    plugin_id, day, name, group = key
    return to_item({"pk": rollup_pk(plugin_id), "sk": rollup_sk(day, name, group, shard)})


def aggregate_to_item(state: AggregateState) -> dict[str, AttributeValue]:
    values: dict[str, Any] = {
        "pk": aggregate_pk(state.plugin_id),
        "sk": aggregate_sk(state.user_id, state.key),
        "plugin_id": state.plugin_id,
        "user_id": state.user_id,
        "key": state.key,
        "version": state.version,
        "reset_at": state.reset_at,
        "updated_at": state.updated_at,
        # Sequence numbers have up to 40 digits: beyond a DynamoDB number's 38, so kept as strings.
        "applied": {shard: [str(seq), when] for shard, (seq, when) in state.applied.items()},
        "count": state.count,
    }
    if state.first is not None:
        values["first"] = [state.first[0], str(state.first[1])]
    if state.numeric:
        values["total"], values["numeric"] = state.total, state.numeric
    if state.latest is not None:
        values["latest"] = {
            "value": state.latest.value,
            "at": state.latest.at,
            "event_id": state.latest.event_id,
        }
    if state.values_total:
        values["values"] = [[entry.value, entry.at, entry.event_id] for entry in state.values]
        values["values_total"] = state.values_total
    if state.first_at is not None:
        values["first_at"], values["last_at"] = state.first_at, state.last_at
    if state.pending_ids:
        values["pending_ids"] = [[event_id, at] for event_id, at in state.pending_ids]
    if state.days:
        # A bit per day from days_base, as hex: a year of daily activity is 92 characters.
        values["days"] = [state.days_base, format(state.days, "x")]
    if state.day_firsts:
        values["day_firsts"] = [
            [day, shard, str(seq), when] for day, (shard, seq, when) in state.day_firsts.items()
        ]
    if state.as_user:
        values["as_user"] = True
    if state.counts or state.other:
        # Pairs, not a map: a map key may not be empty, a tracked value may.
        values["counts"] = [[name, count] for name, count in state.counts.items()]
        values["other"] = state.other
    return to_item(values)


def aggregate_from_item(item: dict[str, AttributeValue]) -> AggregateState:
    values = from_item(item)
    latest = values.get("latest")
    first = values.get("first")
    days = values.get("days")
    return AggregateState(
        plugin_id=values["plugin_id"],
        user_id=values["user_id"],
        key=values["key"],
        version=int(values["version"]),
        reset_at=int(values.get("reset_at", 0)),
        applied={shard: (int(seq), int(when)) for shard, (seq, when) in values.get("applied", {}).items()},
        first=(first[0], int(first[1])) if first else None,
        count=int(values.get("count", 0)),
        total=values.get("total", Decimal(0)),
        numeric=int(values.get("numeric", 0)),
        latest=Latest(_scalar(latest["value"]), int(latest["at"]), latest["event_id"]) if latest else None,
        values=[_entry(v) for v in values.get("values", [])],
        values_total=int(values.get("values_total", 0)),
        counts={name: int(count) for name, count in values.get("counts", [])},
        other=int(values.get("other", 0)),
        updated_at=int(values.get("updated_at", 0)),
        first_at=_optional_int(values.get("first_at")),
        last_at=_optional_int(values.get("last_at")),
        pending_ids=[(event_id, int(at)) for event_id, at in values.get("pending_ids", [])],
        days_base=int(days[0]) if days else 0,
        days=int(days[1], 16) if days else 0,
        day_firsts={
            int(day): (shard, int(seq), int(when)) for day, shard, seq, when in values.get("day_firsts", [])
        },
        as_user=bool(values.get("as_user", False)),
    )


def _entry(stored: Any) -> Entry:
    """An array value as stored: [value, event time, event id]; a bare value from before times were
    kept reads as the oldest."""
    if isinstance(stored, list) and len(stored) == 3:
        return Entry(_scalar(stored[0]), int(stored[1]), str(stored[2]))
    return Entry(_scalar(stored), 0, "")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def profile_to_item(state: ProfileState) -> dict[str, AttributeValue]:
    values: dict[str, Any] = {
        "pk": aggregate_pk(state.plugin_id),
        "sk": profile_sk(state.user_id),
        "kind": PROFILE_KIND,
        "plugin_id": state.plugin_id,
        "user_id": state.user_id,
        "version": state.version,
        "applied": {shard: [str(seq), when] for shard, (seq, when) in state.applied.items()},
        "updated_at": state.updated_at,
    }
    # Traits are any JSON a client sent: kept as JSON text (a map could not hold an empty name).
    if state.traits:
        values["traits"] = dumps_compact(_traits_out(state.traits))
    if state.groups:
        values["groups"] = dumps_compact({gid: _traits_out(traits) for gid, traits in state.groups.items()})
    if state.anonymous_ids:
        values["anonymous_ids"] = state.anonymous_ids
    if state.merged_into is not None:
        values["merged_into"] = state.merged_into
    if state.is_user:
        values["is_user"] = True
    if state.first_at is not None:
        values["first_at"], values["last_at"] = state.first_at, state.last_at
    if state.pending_ids:
        values["pending_ids"] = [[event_id, at] for event_id, at in state.pending_ids]
    return to_item(values)


def _traits_out(traits: dict[str, TraitValue]) -> dict[str, list[Any]]:
    return {name: [t.value, t.at, t.event_id] for name, t in traits.items()}


def _traits_in(stored: dict[str, list[Any]]) -> dict[str, TraitValue]:
    return {name: TraitValue(value, int(at), str(event_id)) for name, (value, at, event_id) in stored.items()}


def profile_from_values(values: dict[str, Any]) -> ProfileState:
    groups = json.loads(values["groups"]) if "groups" in values else {}
    return ProfileState(
        plugin_id=values["plugin_id"],
        user_id=values["user_id"],
        version=int(values["version"]),
        applied={shard: (int(seq), int(when)) for shard, (seq, when) in values.get("applied", {}).items()},
        traits=_traits_in(json.loads(values["traits"])) if "traits" in values else {},
        groups={gid: _traits_in(traits) for gid, traits in groups.items()},
        anonymous_ids=list(values.get("anonymous_ids", [])),
        merged_into=values.get("merged_into"),
        is_user=bool(values.get("is_user", False)),
        first_at=_optional_int(values.get("first_at")),
        last_at=_optional_int(values.get("last_at")),
        pending_ids=[(event_id, int(at)) for event_id, at in values.get("pending_ids", [])],
        updated_at=int(values.get("updated_at", 0)),
    )


def _parse(item: dict[str, AttributeValue]) -> AggregateState | ProfileState:
    if item.get("kind", {}).get("S") == PROFILE_KIND:
        return profile_from_values(from_item(item))
    return aggregate_from_item(item)


def _scalar(value: Any) -> Any:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value


def rollup_to_item(state: RollupState) -> dict[str, AttributeValue]:
    return to_item(
        {
            "pk": rollup_pk(state.plugin_id),
            "sk": rollup_sk(state.day, state.key, state.group, state.shard),
            "plugin_id": state.plugin_id,
            "day": state.day,
            "key": state.key,
            "ab_group": state.group,
            "shard": state.shard,
            "version": state.version,
            "reset_at": state.reset_at,
            "seq": str(state.seq),
            "count": state.count,
            "users": state.users,
            "revenue": state.revenue,
            "active": state.active,
        }
    )


def rollup_from_item(item: dict[str, AttributeValue]) -> RollupState:
    values = from_item(item)
    return RollupState(
        plugin_id=values["plugin_id"],
        day=values["day"],
        key=values["key"],
        group=values["ab_group"],
        shard=values["shard"],
        version=int(values["version"]),
        reset_at=int(values["reset_at"]),
        seq=int(values["seq"]),
        count=int(values["count"]),
        users=int(values["users"]),
        revenue=values["revenue"],
        active=int(values.get("active", 0)),
    )


class AggregateStore:
    def __init__(self, client: Any, table: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._table = table
        self._sleep = sleep

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
            item_key = _aggregate_item_key(key)
            wanted[(item_key["pk"]["S"], item_key["sk"]["S"])] = ("aggregate", key)
        for rollup in rollups:
            item_key = _rollup_item_key(rollup, shard)
            wanted[(item_key["pk"]["S"], item_key["sk"]["S"])] = ("rollup", rollup)
        for plugin_id, user_id in profiles:
            wanted[(aggregate_pk(plugin_id), profile_sk(user_id))] = ("profile", (plugin_id, user_id))
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
        for item in found:
            kind, key = wanted[(item["pk"]["S"], item["sk"]["S"])]
            if kind == "aggregate":
                found_aggregates[key] = aggregate_from_item(item)
            elif kind == "rollup":
                found_rollups[key] = rollup_from_item(item)
            else:
                found_profiles[key] = profile_from_values(from_item(item))
        return found_aggregates, found_rollups, found_profiles

    def _batch_get(
        self, keys: list[dict[str, AttributeValue]], consistent: bool = True
    ) -> Iterator[dict[str, AttributeValue]]:
        for start in range(0, len(keys), BATCH_GET_MAX):
            pending: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + BATCH_GET_MAX], "ConsistentRead": consistent}
            }
            for attempt in range(UNPROCESSED_RETRIES + 1):
                with storage_errors("read aggregates"):
                    answer = self._client.batch_get_item(RequestItems=pending)
                yield from answer.get("Responses", {}).get(self._table, [])
                pending = answer.get("UnprocessedKeys") or {}
                if not pending:
                    break
                if attempt == UNPROCESSED_RETRIES:
                    raise StorageUnavailable("Storage is throttling reads of aggregates")
                self._sleep(min(0.05 * 2**attempt, 1.0))

    def get_aggregate(self, key: AggregateKey) -> AggregateState | None:
        with storage_errors("read aggregate"):
            answer = self._client.get_item(
                TableName=self._table, Key=_aggregate_item_key(key), ConsistentRead=True
            )
        return aggregate_from_item(answer["Item"]) if "Item" in answer else None

    def load_funnels(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], FunnelState]:
        """The stored funnel items of these (plugin, user) pairs, read consistently."""
        wanted = [to_item({"pk": funnel_pk(plugin_id), "sk": user_id}) for plugin_id, user_id in keys]
        found = (funnel_from_item(item) for item in self._batch_get(wanted, consistent=False))
        return {(state.plugin_id, state.user_id): state for state in found}

    def load_rollups(self, rollups: Iterable[RollupKey], shard: str) -> dict[RollupKey, RollupState]:
        """This shard's stored rollups among these (missing ones absent)."""
        found = (
            rollup_from_item(item) for item in self._batch_get([_rollup_item_key(r, shard) for r in rollups])
        )
        return {(state.plugin_id, state.day, state.key, state.group): state for state in found}

    def get_funnel(self, plugin_id: str, user_id: str) -> FunnelState | None:
        with storage_errors("read funnel"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=to_item({"pk": funnel_pk(plugin_id), "sk": user_id}),
                ConsistentRead=True,
            )
        return funnel_from_item(answer["Item"]) if "Item" in answer else None

    def get_profile(self, plugin_id: str, user_id: str) -> ProfileState | None:
        with storage_errors("read profile"):
            answer = self._client.get_item(
                TableName=self._table,
                Key=to_item({"pk": aggregate_pk(plugin_id), "sk": profile_sk(user_id)}),
                ConsistentRead=True,
            )
        return profile_from_values(from_item(answer["Item"])) if "Item" in answer else None

    def save(self, state: AggregateState | RollupState | ProfileState | FunnelState) -> None:
        """Write ``state`` as the next version of its item, if nobody else did in between."""
        expected = state.version
        state.version = expected + 1
        if isinstance(state, AggregateState):
            item = aggregate_to_item(state)
        elif isinstance(state, ProfileState):
            item = profile_to_item(state)
        elif isinstance(state, FunnelState):
            item = funnel_to_item(state)
        else:
            item = rollup_to_item(state)
        try:
            check_size(item, "The aggregate")  # bounded by design: this is what says so if not
        except ItemTooLarge:
            state.version = expected
            raise
        if expected == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "version = :expected",
                "ExpressionAttributeValues": {":expected": to_attr(expected)},
            }
        try:
            with storage_errors("write aggregate"):
                self._client.put_item(TableName=self._table, Item=item, **condition)
        except ClientError as exc:
            state.version = expected
            if error_code(exc) == "ConditionalCheckFailedException":
                raise Conflict(f"{item['pk']['S']!r} {item['sk']['S']!r} changed since it was read") from exc
            raise
        except Exception:
            state.version = expected
            raise

    def has_been_user(self, plugin_id: str, user_id: str) -> bool:
        """Whether any item of the id says it has been a user: an aggregate counting an event that named
        it as its user, or its profile (a user's identity call, or ids linked to it). Read only when a
        link would make the id part of another user: the id's items, until the first that says so."""
        condition = "pk = :pk AND begins_with(sk, :user)"
        values = {":pk": aggregate_pk(plugin_id), ":user": user_prefix(user_id), ":yes": True}
        start: dict[str, Any] = {}
        while True:
            answer = query(
                self._client,
                self._table,
                condition,
                values,
                "read aggregates",
                ConsistentRead=True,
                FilterExpression="as_user = :yes OR is_user = :yes OR attribute_exists(anonymous_ids)",
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
        values = {":pk": aggregate_pk(plugin_id), ":user": user_prefix(user_id)}
        states: list[AggregateState] = []
        profile: ProfileState | None = None
        for item in self._query_all(condition, values):
            parsed = _parse(item)
            if isinstance(parsed, ProfileState):
                profile = parsed
            else:
                states.append(parsed)
        return states, profile

    def page_of_users(self, plugin_id: str, after: str | None, max_items: int) -> UsersPage:
        """Aggregates and profiles of the users after ``after``, in user order: one query of at
        most ``max_items`` items. Users whose items the query cut off are left for the next page."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": aggregate_pk(plugin_id)}
        if after is not None:
            condition += " AND sk >= :next"
            values[":next"] = after_user(after)
        answer = query(self._client, self._table, condition, values, "read aggregates", Limit=max_items)
        page = UsersPage(users={}, more="LastEvaluatedKey" in answer)
        for item in answer.get("Items", []):
            page.add(_parse(item))
        if page.more and page.users:
            last = next(reversed(page.users))
            if len(page.users) > 1:
                page.drop(last)  # possibly cut short: it comes first on the next page
            else:
                # One user with more items than a page holds: read the rest of that user.
                states, profile = self.user_items(plugin_id, last)
                page.users[last] = states
                if profile is not None:
                    page.profiles[last] = profile
        return page

    def users(self, plugin_id: str, after: str | None = None) -> Iterator[UsersPage]:
        """Every user after ``after`` with their aggregates and profile, one user at a time in user
        order, reading each item once."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": aggregate_pk(plugin_id)}
        if after is not None:
            condition += " AND sk >= :next"
            values[":next"] = after_user(after)
        current = UsersPage(users={}, more=False)
        for item in self._query_all(condition, values):
            parsed = _parse(item)
            if current.users and parsed.user_id not in current.users:
                yield current
                current = UsersPage(users={}, more=False)
            current.add(parsed)
        if current.users:
            yield current

    def delete_user_items(self, plugin_id: str, user_id: str, limit: int) -> tuple[int, int, bool]:
        """Delete up to ``limit`` of one id's aggregates and profile: (aggregates, profiles) removed and
        whether any are left."""
        condition = "pk = :pk AND begins_with(sk, :user)"
        values = {":pk": aggregate_pk(plugin_id), ":user": user_prefix(user_id)}
        answer = query(self._client, self._table, condition, values, "read aggregates", Limit=limit)
        items = answer.get("Items", [])
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items]
        if "LastEvaluatedKey" not in answer:  # the last of them: its funnel item goes too
            keys.append(to_item({"pk": funnel_pk(plugin_id), "sk": user_id}))
        batch_delete(self._client, self._table, keys, self._sleep)
        profiles = sum(1 for i in items if i.get("kind", {}).get("S") == PROFILE_KIND)
        return len(items) - profiles, profiles, "LastEvaluatedKey" in answer

    def rollups(
        self, plugin_id: str, first_day: str, last_day: str, keys: Sequence[str] | None = None
    ) -> list[RollupState]:
        """The rollups of the plugin for the days ``first_day``..``last_day`` (YYYY-MM-DD): every one,
        or only those of ``keys`` (at most 100; DynamoDB still reads the range, the function gets only
        what it asked for)."""
        condition = "pk = :pk AND sk BETWEEN :first AND :last"
        first, last = days_range(first_day, last_day)
        values: dict[str, Any] = {":pk": rollup_pk(plugin_id), ":first": first, ":last": last}
        options: dict[str, Any] = {}
        if keys is not None:
            names = {f":k{n}": key for n, key in enumerate(dict.fromkeys(keys))}
            values.update(names)
            options = {
                "FilterExpression": f"#key IN ({', '.join(names)})",
                "ExpressionAttributeNames": {"#key": "key"},
            }
        return [rollup_from_item(item) for item in self._query_all(condition, values, **options)]

    def has_rollups(self, plugin_id: str) -> bool:
        values = {":pk": rollup_pk(plugin_id)}
        answer = query(self._client, self._table, "pk = :pk", values, "read aggregates", Limit=1)
        return bool(answer.get("Items"))

    def _query_all(
        self, condition: str, values: dict[str, Any], **options: Any
    ) -> Iterator[dict[str, AttributeValue]]:
        start: dict[str, Any] = {}
        while True:
            answer = query(
                self._client, self._table, condition, values, "read aggregates", **options, **start
            )
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            start = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}
