"""The live view's store on an in-memory table (the aggregates table's, so the scale simulation counts
its writes by partition key), with the storage's own item builder."""

from __future__ import annotations

from collections.abc import Sequence

from devstack.fakes.table import Table
from tracking.keys import live_pk, live_pks
from tracking.storage.live import expired, lines_of, live_item, scrub


class FakeLive:
    def __init__(self, table: Table) -> None:
        self.table = table
        self.writes = 0

    def recent(self, plugin_id: str, shard: str) -> list[str]:
        return lines_of(self.table.get((live_pk(plugin_id, shard), shard)))

    def keep(self, plugin_id: str, shard: str, lines: Sequence[str], now_ms: int) -> None:
        self.table.put(live_item(plugin_id, shard, lines, now_ms))
        self.writes += 1

    def forget(self, plugin_id: str, ids: Sequence[str], now_ms: int) -> int:
        items = [item for pk in live_pks(plugin_id) for item in self.table.query(pk)]
        return scrub(items, ids, lambda shard, kept: self.keep(plugin_id, shard, kept, now_ms))

    def lines(self, plugin_id: str, now_ms: int) -> list[str]:
        items = [item for pk in live_pks(plugin_id) for item in self.table.query(pk)]
        return [line for item in items if not expired(item, now_ms) for line in lines_of(item)]
