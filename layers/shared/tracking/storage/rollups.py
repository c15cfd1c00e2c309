"""The rollups in the aggregates table: read for a summary or series (each rollup suffix in use and
the day items, in parallel), and folded into their days' items once idle (``aggregate.compaction``
says when), so a summary of past days reads a bounded number of items whatever the shards."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from tracking.keys import day_rollups_pk, days_range, rollups_pk
from tracking.models.aggregates import RollupState
from tracking.storage.dynamo import error_code, query_all, storage_errors, to_attr
from tracking.storage.rollup_items import (
    day_rollup_addition,
    is_compactable,
    rollup_from_item,
    rollup_item_key,
)
from tracking.storage.spread import Parallel


class RollupStore:
    def __init__(self, client: Any, table: str, parallel: Parallel[Any, Any]) -> None:
        self._client = client
        self._table = table
        self._parallel = parallel

    def read(
        self,
        plugin_id: str,
        suffixes: Sequence[int],
        first_day: str,
        last_day: str,
        keys: Sequence[str] | None = None,
    ) -> list[RollupState]:
        """The rollups of the plugin for the days ``first_day``..``last_day`` (YYYY-MM-DD): every one,
        or only those of ``keys`` (at most 100; DynamoDB still reads the range, the function gets only
        what it asked for). One query per rollup suffix in use and one of the day items, in parallel:
        shards' rollups and days' items (shards' rollups folded in) add up alike."""
        condition = "pk = :pk AND sk BETWEEN :first AND :last"
        first, last = days_range(first_day, last_day)
        options: dict[str, Any] = {}
        names: dict[str, str] = {}
        if keys is not None:
            names = {f":k{n}": key for n, key in enumerate(dict.fromkeys(keys))}
            options = {
                "FilterExpression": f"#key IN ({', '.join(names)})",
                "ExpressionAttributeNames": {"#key": "key"},
            }

        def read(suffix: int | None) -> list[RollupState]:
            pk = day_rollups_pk(plugin_id) if suffix is None else rollups_pk(plugin_id, suffix)
            values = {":pk": pk, ":first": first, ":last": last, **names}
            found = query_all(self._client, self._table, condition, values, "read rollups", **options)
            return [rollup_from_item(item) for item in found]

        partitions: list[int | None] = [None, *suffixes]
        return list(itertools.chain.from_iterable(self._parallel(read, partitions)))

    def compact(
        self, plugin_id: str, suffixes: Sequence[int], before_day: str, idle_before: int, limit: int
    ) -> int:
        """Fold shards' rollups of the days before ``before_day`` that nobody wrote since
        ``idle_before`` (ms) into their days' items, at most ``limit``: each in one transaction with
        its deletion, on the version read (a rollup written meanwhile stays as it is). How many were
        folded. A summary read while this runs may see a rollup twice or not at all, once."""
        folded = 0
        for suffix in suffixes:
            values = {":pk": rollups_pk(plugin_id, suffix), ":before": before_day}
            for item in query_all(
                self._client, self._table, "pk = :pk AND sk < :before", values, "read rollups"
            ):
                state = rollup_from_item(item)
                if not is_compactable(state, before_day, idle_before):
                    continue
                if folded == limit:
                    return folded
                folded += self._fold_into_day(state)
        return folded

    def _fold_into_day(self, state: RollupState) -> int:
        delete = {
            "TableName": self._table,
            "Key": rollup_item_key((state.plugin_id, state.day, state.key, state.group), state.shard),
            "ConditionExpression": "version = :version",
            "ExpressionAttributeValues": {":version": to_attr(state.version)},
        }
        try:
            with storage_errors("fold rollups"):
                self._client.transact_write_items(
                    TransactItems=[
                        {"Delete": delete},
                        {"Update": {"TableName": self._table, **day_rollup_addition(state)}},
                    ]
                )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                return 0  # written (or folded) meanwhile: left for another time
            raise
        return 1
