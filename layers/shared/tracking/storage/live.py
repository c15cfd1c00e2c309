"""The live view's items in the aggregates table: one per (plugin, stream shard), its latest events as
zlib-compressed JSON lines, expiring a day after their last write (a closed shard's item goes)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from tracking.keys import live_pk, live_pks
from tracking.storage.dynamo import AttributeValue, query_all, storage_errors, to_item

# An item's events at most (compressed): the oldest go past it. A read of a plugin's live view reads
# one such item per shard that wrote in the last day.
LIVE_ITEM_MAX_BYTES = 48_000
LIVE_TTL_S = 86_400


def live_item(plugin_id: str, shard: str, lines: Sequence[str], now_ms: int) -> dict[str, AttributeValue]:
    kept = list(lines)
    packed = zlib.compress("\n".join(kept).encode(), 6)
    while kept and len(packed) > LIVE_ITEM_MAX_BYTES:
        kept = kept[: len(kept) * 3 // 4]
        packed = zlib.compress("\n".join(kept).encode(), 6)
    item = to_item(
        {
            "pk": live_pk(plugin_id, shard),
            "sk": shard,
            "updated_at": now_ms,
            "expires_at": now_ms // 1000 + LIVE_TTL_S,
        }
    )
    item["events"] = {"B": packed}
    return item


def lines_of(item: dict[str, Any] | None) -> list[str]:
    if not item or "events" not in item:
        return []
    raw = zlib.decompress(item["events"]["B"]).decode()
    return raw.split("\n") if raw else []


class LiveStore:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def recent(self, plugin_id: str, shard: str) -> list[str]:
        with storage_errors("read live view"):
            answer = self._client.get_item(
                TableName=self._table, Key=to_item({"pk": live_pk(plugin_id, shard), "sk": shard})
            )
        return lines_of(answer.get("Item"))

    def keep(self, plugin_id: str, shard: str, lines: Sequence[str], now_ms: int) -> None:
        with storage_errors("write live view"):
            self._client.put_item(TableName=self._table, Item=live_item(plugin_id, shard, lines, now_ms))

    def forget(self, plugin_id: str, ids: Sequence[str], now_ms: int) -> int:
        """Every ring of the plugin rewritten without the events of ``ids``; how many were removed."""
        items = (
            item
            for pk in live_pks(plugin_id)
            for item in query_all(self._client, self._table, "pk = :pk", {":pk": pk}, "read live view")
        )
        return scrub(items, ids, lambda shard, kept: self.keep(plugin_id, shard, kept, now_ms))

    def lines(self, plugin_id: str, now_ms: int) -> list[str]:
        """Every shard's ring of the plugin (a query per partition key), but rings expired and not yet
        removed."""
        lines = []
        for pk in live_pks(plugin_id):
            for item in query_all(self._client, self._table, "pk = :pk", {":pk": pk}, "read live view"):
                lines += [] if expired(item, now_ms) else lines_of(item)
        return lines


def without(lines: Sequence[str], ids: Sequence[str]) -> list[str]:
    """The lines but those of an event of one of ``ids`` (its user, anonymous or previous id)."""
    gone = set(ids)
    kept = []
    for line in lines:
        event = json.loads(line)
        if not {event.get("user_id"), event.get("anonymous_id"), event.get("previous_id")} & gone:
            kept.append(line)
    return kept


def scrub(items: Iterable[dict[str, Any]], ids: Sequence[str], keep: Callable[[str, list[str]], None]) -> int:
    """Each ring that holds events of ``ids`` kept again without them (``keep(shard, lines)``); how
    many events were removed."""
    removed = 0
    for item in items:
        lines = lines_of(item)
        kept = without(lines, ids)
        if len(kept) < len(lines):
            removed += len(lines) - len(kept)
            keep(item["sk"]["S"], kept)
    return removed


def expired(item: dict[str, Any], now_ms: int) -> bool:
    """DynamoDB removes an expired item within days, not at once: a read skips it meanwhile."""
    return int(item.get("expires_at", {}).get("N", "0")) * 1000 < now_ms
