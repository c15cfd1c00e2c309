"""The live view's store on an in-memory table (the aggregates table's, so the scale simulation counts
its writes by partition key): the storage's own ``LiveStore`` over the fake table."""

from __future__ import annotations

from devstack.fakes.table import Item, Table
from tracking.storage.live import LiveStore


class TableItems:
    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, pk: str, sk: str) -> Item | None:
        return self.table.get((pk, sk), consistent=True)

    def put(self, item: Item) -> None:
        self.table.put(item)

    def query(self, pk: str) -> list[Item]:
        return self.table.query(pk)


class FakeLive(LiveStore):
    def __init__(self, table: Table) -> None:
        super().__init__(TableItems(table))
        self.table = table
