"""The events table in memory: ingest's ``EventSink`` and the aggregator's ``Index``, writing the items
storage builds (``event_to_item``, ``index_to_item``, ``record_to_item``) with the same conditions: an
event the client named is stored by storage's own ``store_named`` (its id claimed, then a put if
absent), the others go in all-or-none transactions."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

from devstack.fakes.table import ConditionFailed, Item, Table
from tracking.keys import (
    INDEX_KIND,
    REJECTED_KIND,
    REJECTION_PARTITIONS,
    client_id_pk,
    deletion_prefix,
    deletion_sk,
    deletions_pk,
    event_pk,
    rejection_pk,
    rejections_pk,
)
from tracking.models.canonical import CanonicalEvent
from tracking.models.people import DeletionStep, PartitionPage
from tracking.models.rejections import RejectionRecord
from tracking.models.request import is_client_named
from tracking.storage.claims import store_named
from tracking.storage.deletions import step_from_values, step_to_item
from tracking.storage.dynamo import AttributeValue, from_item
from tracking.storage.events import (
    TRANSACTION_MAX,
    event_from_item,
    event_from_values,
    is_event,
    stored_event_item,
    stored_keys,
    write_key,
)
from tracking.storage.rejections import merged_page, record_from_values, record_to_item
from tracking.storage.user_events import index_to_item

RETENTION_S = 400 * 86_400


class FakeEvents:
    def __init__(
        self,
        table: Table | None = None,
        retention_s: int = RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table if table is not None else Table()
        self._retention_s = retention_s
        self._clock = clock

    def _item(self, event: CanonicalEvent) -> Item:
        return stored_event_item(event, self._retention_s)

    def _put(self, item: Item) -> bool:
        """A client-named event is claimed, then put if absent (False: stored before); the others are
        new."""
        if is_client_named(item["sk"]["S"]):
            return store_named(self, item, int(self._clock() * 1000))
        self.table.put(item)
        return True

    # -- ClaimTable -----------------------------------------------------------------------------------

    def put_if_absent(self, item: Item) -> Item | None:
        try:
            self.table.put(item, if_absent=True)
        except ConditionFailed:
            return self.table.peek(Table.key_of(item))
        return None

    def exists(self, pk: str, sk: str) -> bool:
        return self.table.get((pk, sk)) is not None

    def take_over(self, claim: Item, previous: Mapping[str, AttributeValue]) -> bool:
        if self.table.get(Table.key_of(claim)) != previous:
            return False
        self.table.put(claim)
        return True

    # -- EventSink ----------------------------------------------------------------------------------

    def put(self, event: CanonicalEvent) -> bool:
        return self._put(self._item(event))

    def put_all(self, events: Sequence[CanonicalEvent]) -> None:
        unique = list({write_key(event): event for event in events}.values())
        items = [self._item(event) for event in unique]  # every item sized before the first write
        generated = [item for item in items if not is_client_named(item["sk"]["S"])]
        for start in range(0, len(generated), TRANSACTION_MAX):
            self.table.put_all(generated[start : start + TRANSACTION_MAX])
        for item in items:
            if is_client_named(item["sk"]["S"]):
                self._put(item)

    # -- Index ----------------------------------------------------------------------------------------

    def put_index(self, plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]]) -> None:
        self.table.put(index_to_item(plugin_id, user_id, name, entries, self._retention_s))

    def forget(self, events: Sequence[CanonicalEvent]) -> None:
        for key in sorted({key for event in events for key in stored_keys(event)}):
            self.table.delete(key)

    # -- what deletion and the right of access read ----------------------------------------------

    def partition(self, plugin_id: str, user_id: str, start: str | None, limit: int) -> PartitionPage:
        items, more = self.table.page(event_pk(plugin_id, user_id), after=start, limit=limit)
        values = [from_item(item) for item in items]
        return PartitionPage(
            [event_from_values(value) for value in values if is_event(value)],
            [
                (str(event_id), int(at))
                for value in values
                if value.get("kind") == INDEX_KIND
                for event_id, at in value["entries"]
            ],
            [value["sk"] for value in values],
            values[-1]["sk"] if more and values else None,
        )

    def named(self, plugin_id: str, event_ids: Sequence[str]) -> list[CanonicalEvent]:
        found = (
            self.table.get((client_id_pk(plugin_id, event_id), event_id))
            for event_id in dict.fromkeys(event_ids)
        )
        return [event_from_item(item) for item in found if item is not None]

    def delete_named(self, plugin_id: str, event_ids: Sequence[str]) -> None:
        for event_id in dict.fromkeys(event_ids):
            self.table.delete((client_id_pk(plugin_id, event_id), event_id))

    def delete_in_partition(self, plugin_id: str, user_id: str, sort_keys: Sequence[str]) -> None:
        for sk in sort_keys:
            self.table.delete((event_pk(plugin_id, user_id), sk))

    # -- for tests --------------------------------------------------------------------------------------

    def events(self) -> list[CanonicalEvent]:
        return [event_from_item(item) for item in self.table.all_items() if is_event(from_item(item))]


class FakeRejections:
    """Recorded rejections, as the events table keeps them."""

    def __init__(self, table: Table | None = None) -> None:
        self.table = table if table is not None else Table()

    def record(self, record: RejectionRecord) -> None:
        self.table.put(record_to_item(record))

    def page(
        self, plugin_id: str, after: str | None, max_records: int
    ) -> tuple[list[tuple[str, RejectionRecord]], str | None]:
        pages = [
            self.table.page(rejections_pk(plugin_id, n), after=after, limit=max_records)
            for n in REJECTION_PARTITIONS
        ]
        return merged_page(
            [([from_item(i) for i in items], more) for items, more in pages], max_records, newest=False
        )

    def newest(
        self, plugin_id: str, before: str | None, max_records: int
    ) -> tuple[list[tuple[str, RejectionRecord]], str | None]:
        pages = []
        for n in REJECTION_PARTITIONS:
            items = [
                from_item(item)
                for item in reversed(self.table.query(rejections_pk(plugin_id, n)))
                if before is None or item["sk"]["S"] <= before
            ]
            pages.append((items[: max_records + 1], len(items) > max_records + 1))
        return merged_page(pages, max_records, newest=True)

    def replace(self, sk: str, record: RejectionRecord) -> None:
        for pk in (rejection_pk(record.plugin_id, sk), rejections_pk(record.plugin_id, None)):
            if self.table.peek((pk, sk)) is None:
                continue
            if record.rejections:
                self.table.put({**record_to_item(record, sk), "pk": {"S": pk}})
            else:
                self.table.delete((pk, sk))
            return

    def records(self) -> list[RejectionRecord]:
        return [
            record_from_values(values)
            for values in map(from_item, self.table.all_items())
            if values.get("kind") == REJECTED_KIND
        ]


class FakeDeletions:
    """A deletion's steps, as the events table keeps them (each new one on the stream)."""

    def __init__(self, table: Table | None = None) -> None:
        self.table = table if table is not None else Table()

    def write_step(self, step: DeletionStep) -> None:
        # A step retried after its successor was written leaves that alone.
        with contextlib.suppress(ConditionFailed):
            self.table.put(step_to_item(step, int(time.time())), if_absent=True)

    def latest(self, plugin_id: str, deletion_id: str) -> DeletionStep | None:
        steps = self.table.query(deletions_pk(plugin_id), deletion_prefix(deletion_id))
        return step_from_values(from_item(steps[-1])) if steps else None

    def remove_steps(self, plugin_id: str, deletion_id: str, before: int) -> None:
        last = deletion_sk(deletion_id, before - 1)
        for item in self.table.query(deletions_pk(plugin_id), deletion_prefix(deletion_id)):
            if item["sk"]["S"] <= last:
                self.table.delete(self.table.key_of(item))
