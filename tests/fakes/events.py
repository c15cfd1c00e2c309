"""The events table in memory: ingest's ``EventSink`` and the aggregator's ``Index``, writing the items
storage builds (``event_to_item``, ``index_to_item``, ``record_to_item``) with the same conditions: an
event the client named is a put if absent, the others go in all-or-none transactions."""

from __future__ import annotations

from collections.abc import Sequence

from tests.fakes.table import ConditionFailed, Table
from tracking.models.canonical import CanonicalEvent
from tracking.models.rejections import RejectionRecord
from tracking.models.request import is_client_named
from tracking.storage.dynamo import check_size, from_item
from tracking.storage.events import (
    TRANSACTION_MAX,
    event_from_item,
    event_key,
    event_to_item,
    index_to_item,
    is_event,
)
from tracking.storage.rejections import record_from_values, record_to_item

RETENTION_S = 400 * 86_400


class FakeEvents:
    def __init__(self, table: Table | None = None, retention_s: int = RETENTION_S) -> None:
        self.table = table or Table()
        self._retention_s = retention_s

    def _item(self, event: CanonicalEvent) -> dict[str, dict[str, object]]:
        return check_size(event_to_item(event, event.received_at // 1000 + self._retention_s), "The event")

    # -- EventSink ----------------------------------------------------------------------------------

    def put(self, event: CanonicalEvent) -> bool:
        item = self._item(event)
        try:
            self.table.put(item, if_absent=is_client_named(event.event_id))
        except ConditionFailed:
            return False
        return True

    def put_all(self, events: Sequence[CanonicalEvent]) -> None:
        unique = list({event_key(event): event for event in events}.values())
        items = [self._item(event) for event in unique]
        generated = [
            item for item, event in zip(items, unique, strict=True) if not is_client_named(event.event_id)
        ]
        for start in range(0, len(generated), TRANSACTION_MAX):
            self.table.put_all(generated[start : start + TRANSACTION_MAX])
        for event in unique:
            if is_client_named(event.event_id):
                self.put(event)

    def put_atomic(self, events: Sequence[CanonicalEvent]) -> None:
        if len(events) > TRANSACTION_MAX:
            raise ValueError(f"at most {TRANSACTION_MAX} events are written atomically")
        self.table.put_all([self._item(event) for event in events])

    # -- Index ----------------------------------------------------------------------------------------

    def put_index(self, plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]]) -> None:
        self.table.put(index_to_item(plugin_id, user_id, name, entries, self._retention_s))

    def forget(self, events: Sequence[CanonicalEvent]) -> None:
        for key in sorted({event_key(event) for event in events}):
            self.table.delete(key)

    # -- for tests --------------------------------------------------------------------------------------

    def events(self) -> list[CanonicalEvent]:
        return [event_from_item(item) for item in self.table.all_items() if is_event(from_item(item))]


class FakeRefusals:
    """Recorded rejections, as the events table keeps them."""

    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()

    def record(self, record: RejectionRecord) -> None:
        self.table.put(record_to_item(record))

    def records(self) -> list[RejectionRecord]:
        return [record_from_values(from_item(item)) for item in self.table.all_items()]
