"""The live view's items in the aggregates table. Each (plugin, stream shard) has two, both
zlib-compressed JSON lines, newest first, expiring a day after their last write:

- the **head** (sort key ``live_head_sk(shard)``): the newest events, at most ``HEAD_MAX_BYTES`` compressed,
  read and written by each batch;
- the **ring** (sort key the shard's id): up to ``RING_MAX`` older events, at most
  ``LIVE_ITEM_MAX_BYTES``, written when the head is full (the head's events move into it and the
  head starts again), or when a batch brings more than a head holds (``LiveStore.add``).

DynamoDB bills a write by the item's size, so a batch of a few events pays for the small head, not
for the whole ring (200 events of about 1 KB are 7 to 14 KB compressed): a plugin with one event a
batch pays about 1.9 write units an event, where rewriting the ring each batch cost about 6.7.

A read merges both, with every shard's, and shows each event once (an event moved to the ring but
still in a head whose rewrite failed is one event)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

from tracking.keys import live_head_sk, live_pk, live_pks
from tracking.models.live import merged
from tracking.storage.dynamo import AttributeValue, query_all, storage_errors, to_item

# A ring's events at most (compressed): the oldest go past it. A read of a plugin's live view reads
# two such items per shard that wrote in the last day.
LIVE_ITEM_MAX_BYTES = 48_000
# A head's events at most (compressed): past it they move to the ring. Smaller heads cost less per
# write but move more often (each move rewrites the ring). Measured with 1 KB events: 1, 5 and 20
# events a batch cost 1.9, 0.50 and 0.21 write units an event at 2 KB (2.4, 0.56, 0.21 at 3 KB; 1.6,
# 0.65, 0.34 at 1 KB), where rewriting the whole ring each batch cost 6.7, 1.3 and 0.34.
HEAD_MAX_BYTES = 2_000
LIVE_TTL_S = 86_400

Item = dict[str, AttributeValue]


def pack(lines: Sequence[str]) -> bytes:
    return zlib.compress("\n".join(lines).encode(), 6)


def live_item(pk: str, sk: str, lines: Sequence[str], now_ms: int, packed: bytes | None = None) -> Item:
    """An item of these lines (newest first), the oldest left out past ``LIVE_ITEM_MAX_BYTES``;
    ``packed``: the lines already compressed."""
    kept = list(lines)
    packed = pack(kept) if packed is None else packed
    while kept and len(packed) > LIVE_ITEM_MAX_BYTES:
        kept = kept[: len(kept) * 3 // 4]
        packed = pack(kept)
    item = to_item({"pk": pk, "sk": sk, "updated_at": now_ms, "expires_at": now_ms // 1000 + LIVE_TTL_S})
    item["events"] = {"B": packed}
    return item


def _too_soon(item: dict[str, Any] | None, unless_after: int | None) -> bool:
    """The item was written after ``unless_after`` (ms), if one is given."""
    if unless_after is None or not item or "updated_at" not in item:
        return False
    return int(item["updated_at"]["N"]) > unless_after


def lines_of(item: dict[str, Any] | None) -> list[str]:
    if not item or "events" not in item:
        return []
    raw = zlib.decompress(item["events"]["B"]).decode()
    return raw.split("\n") if raw else []


class Items(Protocol):
    """The table as the live view uses it."""

    def get(self, pk: str, sk: str) -> Item | None:
        """The item, read consistently (this container's last write is seen)."""

    def put(self, item: Item) -> None: ...

    def query(self, pk: str) -> list[Item]: ...


class LiveStore:
    """The live view's reads and writes, over any ``Items``: the aggregator's ``add``, the route's
    ``lines``, a deletion's ``forget``. ``writes`` counts the items written (the scale simulation)."""

    def __init__(self, items: Items) -> None:
        self._items = items
        self.writes = 0

    def add(
        self,
        plugin_id: str,
        shard: str,
        lines: Sequence[str],
        now_ms: int,
        *,
        unless_after: int | None = None,
    ) -> bool:
        """Put newly stored events (newest first) in the shard's view, what is stored read again first
        (a head or ring a deletion scrubbed is never written back from a copy); whether it wrote.
        ``unless_after``: write nothing if the item this write would replace was written after it
        (a busy shard's batches are written at most once an interval, whichever container has them:
        the time is read with the item, which is read before any write anyway).

        - events that fit in the head with what it holds go there (one small write);
        - events too many for even an empty head (a busy shard's batch) go straight to the ring, and
          the head keeps what it holds (read with the ring): one write, as many as the ring alone;
        - otherwise the head is full: it moves into the ring with the events (written first: a
          failure between the two writes leaves events in both, shown once) and starts again."""
        pk, head_sk = live_pk(plugin_id, shard), live_head_sk(shard)
        if len(pack(lines)) > HEAD_MAX_BYTES:
            ring_item = self._items.get(pk, shard)
            if _too_soon(ring_item, unless_after):
                return False
            self._put(live_item(pk, shard, merged(lines, lines_of(ring_item)), now_ms))
            return True
        head_item = self._items.get(pk, head_sk)
        if _too_soon(head_item, unless_after):
            return False
        head = lines_of(head_item)
        combined = merged(lines, head)
        packed = pack(combined)
        if len(packed) <= HEAD_MAX_BYTES:
            self._put(live_item(pk, head_sk, combined, now_ms, packed))
            return True
        ring = lines_of(self._items.get(pk, shard))
        self._put(live_item(pk, shard, merged(combined, ring), now_ms))
        if head:
            self._put(live_item(pk, head_sk, [], now_ms))
        return True

    def lines(self, plugin_id: str, now_ms: int) -> list[str]:
        """Every line of the plugin's heads and rings (a query per partition key), but those of items
        expired and not yet removed."""
        return [
            line
            for pk in live_pks(plugin_id)
            for item in self._items.query(pk)
            if not expired(item, now_ms)
            for line in lines_of(item)
        ]

    def forget(self, plugin_id: str, ids: Sequence[str], now_ms: int) -> int:
        """Every head and ring of the plugin written again without the events of ``ids``; how many
        events were removed."""
        removed = 0
        for pk in live_pks(plugin_id):
            for item in self._items.query(pk):
                lines = lines_of(item)
                kept = without(lines, ids)
                if len(kept) < len(lines):
                    removed += len(lines) - len(kept)
                    self._put(live_item(pk, item["sk"]["S"], kept, now_ms))
        return removed

    def _put(self, item: Item) -> None:
        self._items.put(item)
        self.writes += 1


class DynamoItems:
    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def get(self, pk: str, sk: str) -> Item | None:
        with storage_errors("read live view"):
            answer = self._client.get_item(
                TableName=self._table, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True
            )
        found: Item | None = answer.get("Item")
        return found

    def put(self, item: Item) -> None:
        with storage_errors("write live view"):
            self._client.put_item(TableName=self._table, Item=item)

    def query(self, pk: str) -> list[Item]:
        return list(query_all(self._client, self._table, "pk = :pk", {":pk": pk}, "read live view"))


def live_store(client: Any, table: str) -> LiveStore:
    return LiveStore(DynamoItems(client, table))


def without(lines: Sequence[str], ids: Sequence[str]) -> list[str]:
    """The lines but those of an event of one of ``ids`` (its user, anonymous or previous id)."""
    gone = set(ids)
    kept = []
    for line in lines:
        event = json.loads(line)
        if not {event.get("user_id"), event.get("anonymous_id"), event.get("previous_id")} & gone:
            kept.append(line)
    return kept


def expired(item: dict[str, Any], now_ms: int) -> bool:
    """DynamoDB removes an expired item within days, not at once: a read skips it meanwhile."""
    return int(item.get("expires_at", {}).get("N", "0")) * 1000 < now_ms
