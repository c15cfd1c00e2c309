"""The aggregates table: one item per (plugin, key, user) and per-shard daily rollups.

Layout: aggregates under ``pk = u␟plugin``, ``sk = user␟key``, so one plugin's users sort together and
a page of rows is one query; rollups under ``pk = r␟plugin``, ``sk = day␟key␟group␟shard``, so a date
range is one query. Every write is a conditional put on the item's version (optimistic concurrency).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from tracking.models.aggregates import (
    AggregateKey,
    AggregateState,
    Latest,
    RollupKey,
    RollupState,
    UsersPage,
)
from tracking.models.failures import Conflict, StorageUnavailable
from tracking.storage.dynamo import (
    AttributeValue,
    error_code,
    from_item,
    query,
    storage_errors,
    to_attr,
    to_item,
)
from tracking.storage.events import SEP

BATCH_GET_MAX = 100
UNPROCESSED_RETRIES = 6


def aggregate_pk(plugin_id: str) -> str:
    return f"u{SEP}{plugin_id}"


def aggregate_sk(user_id: str, key: str) -> str:
    return f"{user_id}{SEP}{key}"


def rollup_pk(plugin_id: str) -> str:
    return f"r{SEP}{plugin_id}"


def rollup_sk(day: str, key: str, group: str, shard: str) -> str:
    return f"{day}{SEP}{key}{SEP}{group}{SEP}{shard}"


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
        values["values"], values["values_total"] = state.values, state.values_total
    if state.counts or state.other:
        # Pairs, not a map: a map key may not be empty, a tracked value may.
        values["counts"] = [[name, count] for name, count in state.counts.items()]
        values["other"] = state.other
    return to_item(values)


def aggregate_from_item(item: dict[str, AttributeValue]) -> AggregateState:
    values = from_item(item)
    latest = values.get("latest")
    first = values.get("first")
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
        values=[_scalar(v) for v in values.get("values", [])],
        values_total=int(values.get("values_total", 0)),
        counts={name: int(count) for name, count in values.get("counts", [])},
        other=int(values.get("other", 0)),
        updated_at=int(values.get("updated_at", 0)),
    )


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
    )


class AggregateStore:
    def __init__(self, client: Any, table: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._table = table
        self._sleep = sleep

    def load(
        self, aggregates: Iterable[AggregateKey], rollups: Iterable[RollupKey], shard: str
    ) -> tuple[dict[AggregateKey, AggregateState], dict[RollupKey, RollupState]]:
        """The stored states of these aggregates and of this shard's rollups (missing ones absent),
        read consistently in as few requests as BatchGetItem allows."""
        wanted: dict[tuple[str, str], tuple[str, Any]] = {}
        for key in aggregates:
            item_key = _aggregate_item_key(key)
            wanted[(item_key["pk"]["S"], item_key["sk"]["S"])] = ("aggregate", key)
        for rollup in rollups:
            item_key = _rollup_item_key(rollup, shard)
            wanted[(item_key["pk"]["S"], item_key["sk"]["S"])] = ("rollup", rollup)
        found_aggregates: dict[AggregateKey, AggregateState] = {}
        found_rollups: dict[RollupKey, RollupState] = {}
        for item in self._batch_get([{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in wanted]):
            kind, key = wanted[(item["pk"]["S"], item["sk"]["S"])]
            if kind == "aggregate":
                found_aggregates[key] = aggregate_from_item(item)
            else:
                found_rollups[key] = rollup_from_item(item)
        return found_aggregates, found_rollups

    def _batch_get(self, keys: list[dict[str, AttributeValue]]) -> Iterator[dict[str, AttributeValue]]:
        for start in range(0, len(keys), BATCH_GET_MAX):
            pending: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + BATCH_GET_MAX], "ConsistentRead": True}
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

    def save(self, state: AggregateState | RollupState) -> None:
        """Write ``state`` as the next version of its item, if nobody else did in between."""
        expected = state.version
        state.version = expected + 1
        item = aggregate_to_item(state) if isinstance(state, AggregateState) else rollup_to_item(state)
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

    def user_aggregates(self, plugin_id: str, user_id: str) -> list[AggregateState]:
        """Every aggregate of one user of a plugin (one query, more only past 1 MB)."""
        condition = "pk = :pk AND begins_with(sk, :user)"
        values = {":pk": aggregate_pk(plugin_id), ":user": f"{user_id}{SEP}"}
        return [aggregate_from_item(item) for item in self._query_all(condition, values)]

    def page_of_users(self, plugin_id: str, after_user: str | None, max_items: int) -> UsersPage:
        """Aggregates of the users after ``after_user``, in user order: one query of at most
        ``max_items`` items. Users whose items the query cut off are left for the next page."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": aggregate_pk(plugin_id)}
        if after_user is not None:
            # Every sort key of a user is "user␟key" and identifiers hold no control character, so
            # the next user's items all sort at or after "user" followed by a space.
            condition += " AND sk >= :next"
            values[":next"] = f"{after_user} "
        answer = query(self._client, self._table, condition, values, "read aggregates", Limit=max_items)
        users: dict[str, list[AggregateState]] = {}
        for item in answer.get("Items", []):
            state = aggregate_from_item(item)
            users.setdefault(state.user_id, []).append(state)
        more = "LastEvaluatedKey" in answer
        if more and users:
            last = next(reversed(users))
            if len(users) > 1:
                del users[last]  # possibly cut short: it comes first on the next page
            else:
                # One user with more items than a page holds: read the rest of that user.
                users[last] = self.user_aggregates(plugin_id, last)
        return UsersPage(users=users, more=more)

    def users(
        self, plugin_id: str, after_user: str | None = None
    ) -> Iterator[tuple[str, list[AggregateState]]]:
        """Every user after ``after_user`` with their aggregates, in user order, reading each item once."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": aggregate_pk(plugin_id)}
        if after_user is not None:
            condition += " AND sk >= :next"
            values[":next"] = f"{after_user} "
        current: tuple[str, list[AggregateState]] | None = None
        for item in self._query_all(condition, values):
            state = aggregate_from_item(item)
            if current is not None and current[0] != state.user_id:
                yield current
                current = None
            if current is None:
                current = (state.user_id, [])
            current[1].append(state)
        if current is not None:
            yield current

    def rollups(self, plugin_id: str, first_day: str, last_day: str) -> list[RollupState]:
        """Every rollup of the plugin for the days ``first_day``..``last_day`` (YYYY-MM-DD)."""
        condition = "pk = :pk AND sk BETWEEN :first AND :last"
        # "day␟key␟group␟shard" of the last day sorts before "day ", and after every earlier day.
        values = {":pk": rollup_pk(plugin_id), ":first": first_day, ":last": f"{last_day} "}
        return [rollup_from_item(item) for item in self._query_all(condition, values)]

    def has_rollups(self, plugin_id: str) -> bool:
        values = {":pk": rollup_pk(plugin_id)}
        answer = query(self._client, self._table, "pk = :pk", values, "read aggregates", Limit=1)
        return bool(answer.get("Items"))

    def _query_all(self, condition: str, values: dict[str, Any]) -> Iterator[dict[str, AttributeValue]]:
        start: dict[str, Any] = {}
        while True:
            answer = query(self._client, self._table, condition, values, "read aggregates", **start)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            start = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}
