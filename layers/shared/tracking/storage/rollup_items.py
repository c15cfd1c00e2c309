"""The rollups' items in the aggregates table: a shard's rollup of a (plugin, day, key, group), and a
day's item that shards' rollups are folded into once idle (``storage.rollups``). Every layout from
``tracking.keys``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tracking.keys import day_rollup_sk, day_rollups_pk, rollup_pk, rollup_sk
from tracking.models.aggregates import RollupKey, RollupState
from tracking.storage.dynamo import AttributeValue, from_item, to_item


def rollup_item_key(key: RollupKey, shard: str) -> dict[str, AttributeValue]:
    plugin_id, day, name, group = key
    return to_item({"pk": rollup_pk(plugin_id, shard), "sk": rollup_sk(day, name, group, shard)})


def rollup_to_item(state: RollupState) -> dict[str, AttributeValue]:
    return to_item(
        {
            "pk": rollup_pk(state.plugin_id, state.shard),
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
            "written_at": state.written_at,
        }
    )


def rollup_from_item(item: dict[str, AttributeValue]) -> RollupState:
    """A shard's rollup, or a day's item as a rollup of no shard (``shard`` empty, never written by a
    batch): what readers add up alike."""
    values = from_item(item)
    return RollupState(
        plugin_id=values["plugin_id"],
        day=values["day"],
        key=values["key"],
        group=values["ab_group"],
        shard=values.get("shard", ""),
        version=int(values.get("version", 0)),
        reset_at=int(values["reset_at"]),
        seq=int(values.get("seq", -1)),
        count=int(values.get("count", 0)),
        users=int(values.get("users", 0)),
        revenue=values.get("revenue", Decimal(0)),
        active=int(values.get("active", 0)),
        written_at=int(values.get("written_at", 0)),
    )


# What a shard's rollup adds to its day's item when folded in (every counter adds up across shards).
DAY_COUNTERS = ("count", "users", "revenue", "active")


def day_rollup_key(state: RollupState) -> dict[str, AttributeValue]:
    return to_item(
        {
            "pk": day_rollups_pk(state.plugin_id),
            "sk": day_rollup_sk(state.day, state.key, state.group, state.reset_at),
        }
    )


def day_rollup_item(state: RollupState) -> dict[str, AttributeValue]:
    """A day's item whole (what ``day_rollup_addition`` leaves after adding to nothing)."""
    values = {name: getattr(state, name) for name in DAY_COUNTERS}
    return {
        **day_rollup_key(state),
        **to_item(
            {
                "plugin_id": state.plugin_id,
                "day": state.day,
                "key": state.key,
                "ab_group": state.group,
                "reset_at": state.reset_at,
                **values,
            }
        ),
    }


def day_rollup_addition(state: RollupState) -> dict[str, Any]:
    """An UpdateItem adding ``state``'s counters to its day's item (made if absent)."""
    return {
        "Key": day_rollup_key(state),
        "UpdateExpression": "SET plugin_id = :plugin, #day = :day, #key = :key, ab_group = :group, "
        "reset_at = :reset ADD #count :count, #users :users, revenue :revenue, active :active",
        "ExpressionAttributeNames": {"#day": "day", "#key": "key", "#count": "count", "#users": "users"},
        "ExpressionAttributeValues": to_item(
            {
                ":plugin": state.plugin_id,
                ":day": state.day,
                ":key": state.key,
                ":group": state.group,
                ":reset": state.reset_at,
                **{f":{name}": getattr(state, name) for name in DAY_COUNTERS},
            }
        ),
    }


def is_compactable(state: RollupState, before_day: str, idle_before: int) -> bool:
    """A shard's rollup of a day before ``before_day`` that nobody wrote since ``idle_before`` (ms): no
    retry of a batch that wrote it can come any more, so it can be folded into its day's item."""
    return state.day < before_day and state.written_at < idle_before
