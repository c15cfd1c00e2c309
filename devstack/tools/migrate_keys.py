"""``tracking-local migrate-keys``: moves the aggregates table's items from the first key layout (one
partition key per plugin: ``u␟plugin``, ``f␟plugin``, ``r␟plugin``) to the suffixed one
(``tracking.keys``: per user for aggregates, profiles and funnel items, per shard for rollups), and
lists the suffixes it fills on each plugin's suffixes item.

Each item is copied under its new key if nothing is there yet, then deleted under the old one. A run
cut short is run again: a copy already made (the same item) only has its old key deleted. A new-layout
item that differs from the old one means the aggregator ran on the new layout before the migration
(docs/DEPLOY.md says to pause it): that old item is left where it is and reported, never overwritten.
The local stack runs this at every start (nothing to do is one scan of the table)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from tracking.keys import SEP, aggregate_pk, funnel_pk, rollup_pk
from tracking.storage.aggregates import AggregateStore
from tracking.storage.dynamo import AttributeValue, error_code

logger = logging.getLogger(__name__)

Item = dict[str, AttributeValue]
LEGACY_KINDS = ("u", "f", "r")  # aggregates and profiles, funnel items, rollups


@dataclass
class Migration:
    scanned: int = 0
    moved: int = 0
    already: int = 0  # copied by an earlier run cut short: only the old key was left to delete
    conflicts: list[tuple[str, str]] = field(default_factory=list)  # old keys left: see the docstring


def new_key(item: Item) -> str | None:
    """The partition key ``item`` has in the suffixed layout, if it is an item of the first layout."""
    kind, _, plugin_id = item["pk"]["S"].partition(SEP)
    if kind not in LEGACY_KINDS or not plugin_id or SEP in plugin_id:
        return None
    if kind == "u":
        return aggregate_pk(plugin_id, item["user_id"]["S"])
    if kind == "f":
        return funnel_pk(plugin_id, item["sk"]["S"])
    return rollup_pk(plugin_id, item["shard"]["S"])


def migrate(client: Any, table: str, segments: int = 8) -> Migration:
    """Move every first-layout item of ``table`` (idempotent; safe to run again), ``segments`` parts
    of the table at once (a parallel scan, each part in its own thread)."""
    with ThreadPoolExecutor(max_workers=segments) as pool:
        parts = list(pool.map(partial(_migrate_segment, client, table, segments), range(segments)))
    done = Migration(
        scanned=sum(part.scanned for part in parts),
        moved=sum(part.moved for part in parts),
        already=sum(part.already for part in parts),
        conflicts=[conflict for part in parts for conflict in part.conflicts],
    )
    logger.info(
        "key layout migrated: %d items scanned, %d moved, %d already copied, %d conflicts",
        done.scanned,
        done.moved,
        done.already,
        len(done.conflicts),
    )
    return done


def _migrate_segment(client: Any, table: str, segments: int, segment: int) -> Migration:
    store = AggregateStore(client, table)
    done = Migration()
    start: dict[str, Any] = {}
    while True:
        page = client.scan(
            TableName=table, ConsistentRead=True, Segment=segment, TotalSegments=segments, **start
        )
        moved: list[Item] = []
        for item in page.get("Items", []):
            done.scanned += 1
            pk = new_key(item)
            if pk is not None:
                moved += _move(client, table, item, {**item, "pk": {"S": pk}}, done)
        store.record_suffixes_of(moved)
        if "LastEvaluatedKey" not in page:
            break
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    return done


def _move(client: Any, table: str, old: Item, new: Item, done: Migration) -> list[Item]:
    try:
        client.put_item(TableName=table, Item=new, ConditionExpression="attribute_not_exists(pk)")
        done.moved += 1
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        there = client.get_item(TableName=table, Key=_key(new), ConsistentRead=True).get("Item")
        if there != new:
            done.conflicts.append((old["pk"]["S"], old["sk"]["S"]))
            return []
        done.already += 1
    client.delete_item(TableName=table, Key=_key(old))
    return [new]


def _key(item: Item) -> Item:
    return {"pk": item["pk"], "sk": item["sk"]}
