"""The events table: one item per accepted event, keyed so a retried call lands on the same item, and
the rejections recorded for each plugin.

An event whose id the client chose (a Segment ``messageId``, an order number, a content digest) is
keyed by that id within its plugin (``keys.client_id_pk``): a conditional put is the whole
exactly-once check, one write, whoever sends it again. An event whose id this service generated is
new by construction and sits in its user's partition (``keys.event_pk``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from tracking.json_text import dumps_compact
from tracking.keys import (
    DELETION_KIND,
    INDEX_KIND,
    REJECTED_KIND,
    client_id_pk,
    event_pk,
    index_sk,
)
from tracking.models.canonical import CanonicalEvent, Item
from tracking.models.people import PartitionPage
from tracking.models.request import is_client_named
from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.dynamo import (
    AttributeValue,
    batch_delete,
    check_size,
    error_code,
    from_item,
    query,
    storage_errors,
    to_attr,
    to_item,
)
from tracking.storage.dynamo import Item as StoredItem

logger = logging.getLogger(__name__)

TRANSACTION_MAX = 100
PARALLEL_PUTS = 8
# Stored as JSON text: free-form objects a client sent (DynamoDB maps may not hold empty keys).
JSON_FIELDS = ("properties", "context", "traits", "integrations", "client_times")
TEXT_FIELDS = (
    "ab_group",
    "commerce",
    "currency",
    "order_id",
    "time_adjusted",
    "anonymous_id",
    "previous_id",
    "group_id",
    "name",
    "category",
    "message_id",
)


def event_key(event: CanonicalEvent) -> tuple[str, str]:
    if is_client_named(event.event_id):
        return client_id_pk(event.plugin_id, event.event_id), event.event_id
    return event_pk(event.plugin_id, event.user_id), event.event_id


def event_to_item(event: CanonicalEvent, expires_at: int) -> dict[str, AttributeValue]:
    pk, sk = event_key(event)
    values: dict[str, Any] = {
        "pk": pk,
        "sk": sk,
        "plugin_id": event.plugin_id,
        "user_id": event.user_id,
        "key": event.key,
        "kind": event.kind,
        "dialect": event.dialect,
        "value": event.value,
        "event_time": event.event_time,
        "received_at": event.received_at,
        "expires_at": expires_at,
    }
    values.update({name: getattr(event, name) for name in TEXT_FIELDS})
    if event.items:
        values["items"] = [item.model_dump(exclude_none=True) for item in event.items]
    stored = {name: getattr(event, name) for name in JSON_FIELDS}
    stored["traits"] = _own_traits(event)
    for name, value in stored.items():
        if value:
            values[name] = dumps_compact(value)
    item = to_item(values)
    if event.items or event.commerce:
        # Stored even when null: an unknown currency is recorded as "no known value", never guessed.
        item["total_value_base"] = to_attr(event.total_value_base)
    return item


def stored_event_item(event: CanonicalEvent, retention_s: int) -> dict[str, AttributeValue]:
    """The event's item as written, expiring ``retention_s`` after its arrival; refused
    (:class:`ItemTooLarge`) before any write if DynamoDB would."""
    return check_size(event_to_item(event, event.received_at // 1000 + retention_s), "The event")


def _context_traits(kind: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """The user's traits a call carries in ``context.traits`` (a group call's traits are the group's)."""
    found = context.get("traits") if kind != "group" else None
    return found if isinstance(found, dict) else {}


def _own_traits(event: CanonicalEvent) -> dict[str, Any]:
    """The event's traits less those its context already holds with the same value: stored once, and
    read back whole (``event_from_values``)."""
    inherited = _context_traits(event.kind, event.context)
    return {
        name: value
        for name, value in event.traits.items()
        if name not in inherited or inherited[name] != value or type(inherited[name]) is not type(value)
    }


def event_from_item(item: Mapping[str, AttributeValue]) -> CanonicalEvent:
    """The canonical event back from a stored item or a stream record's ``NewImage``."""
    return event_from_values(from_item(item))


def is_event(values: Mapping[str, Any]) -> bool:
    """An event item (the table also holds recorded rejections, indexes and deletion steps)."""
    return values.get("kind") is not None and values.get("kind") not in NOT_EVENTS


def event_from_values(values: Mapping[str, Any]) -> CanonicalEvent:
    """The canonical event from an item already turned into Python values (numbers as ``Decimal``).
    Attributes an older item lacks keep the event's defaults."""
    values = dict(values)
    for name in JSON_FIELDS:
        values[name] = json.loads(values[name]) if name in values else {}
    values["traits"] = {**_context_traits(values.get("kind", "track"), values["context"]), **values["traits"]}
    values["items"] = tuple(Item.model_validate(raw) for raw in values.get("items", ()))
    for name in ("event_time", "received_at"):
        values[name] = int(values[name])
    value = values.get("value")
    if isinstance(value, Decimal) and value == value.to_integral_value():
        values["value"] = value.quantize(Decimal(1))
    values["event_id"] = values.pop("sk")
    for name in ("pk", "expires_at"):
        values.pop(name, None)
    return CanonicalEvent.model_validate(values)


# Items of the events table that are not events: recorded rejections, an index of a user's
# client-named events, and the steps of a deletion (their stream records go to the forget function).
NOT_EVENTS = frozenset({REJECTED_KIND, INDEX_KIND, DELETION_KIND})
BATCH_GET_MAX = 100


class EventStore:
    """Writes events so that no answer can make a retry count them twice: an id the client chose is a
    conditional put; generated ids go in transactions (all or none); and a write whose answer was
    lost (a timeout after botocore's retries) is looked up before the call is answered 503, so a 503
    always means "not stored"."""

    def __init__(self, client: Any, events_table: str, retention_days: int) -> None:
        self._client = client
        self._events_table = events_table
        self._retention_s = retention_days * 86_400

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=PARALLEL_PUTS, thread_name_prefix="put-events")

    def _item(self, event: CanonicalEvent) -> StoredItem:
        return stored_event_item(event, self._retention_s)

    def put(self, event: CanonicalEvent) -> bool:
        """Store one event; False when it was already stored (an id the client chose, seen before)."""
        return self._put(self._item(event))

    def _put(self, item: StoredItem) -> bool:
        # An id this service just generated is new by construction; an id the client chose may be a
        # retry (or a reuse), which must leave the stored event as it was (the sort key is the id).
        named = is_client_named(item["sk"]["S"])
        condition = {"ConditionExpression": "attribute_not_exists(pk)"} if named else {}
        try:
            with storage_errors("put event"):
                self._client.put_item(TableName=self._events_table, Item=item, **condition)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        except StorageUnavailable:
            if self._landed(item):
                return True
            raise
        return True

    def put_all(self, events: Sequence[CanonicalEvent]) -> None:
        """Store each event once, in few round trips: events the client named by a conditional put
        each, in parallel (a retry of the call stores only what is missing); the others (calls without
        an id of their own) in transactions of up to 100, so a 503 never leaves part of one behind."""
        unique = list({event_key(event): event for event in events}.values())
        # Every item is built (and its size checked) before the first write.
        items = [self._item(event) for event in unique]
        named = [item for item in items if is_client_named(item["sk"]["S"])]
        generated = [item for item in items if not is_client_named(item["sk"]["S"])]
        for start in range(0, len(generated), TRANSACTION_MAX):
            self._put_atomic(generated[start : start + TRANSACTION_MAX])
        if len(named) <= 1:
            for item in named:
                self._put(item)
        else:
            list(self._pool.map(self._put, named))

    def put_atomic(self, events: Sequence[CanonicalEvent]) -> None:
        """All or none (one transaction, at most 100): for a call whose events carry no id of their own,
        so a 503 never leaves half of it behind for a retry to count twice."""
        if len(events) > TRANSACTION_MAX:
            raise ValueError(f"at most {TRANSACTION_MAX} events are written atomically")
        self._put_atomic([self._item(event) for event in events])

    def _put_atomic(self, items: Sequence[StoredItem]) -> None:
        if len(items) == 1:
            self._put(items[0])
            return
        try:
            # botocore gives the call one ClientRequestToken for all its attempts, so its own retries
            # of a transaction that did commit change nothing.
            with storage_errors("put events"):
                self._client.transact_write_items(
                    TransactItems=[{"Put": {"TableName": self._events_table, "Item": item}} for item in items]
                )
        except StorageUnavailable:
            if self._landed(items[0]):  # a transaction lands whole or not at all
                return
            raise

    def _landed(self, item: Mapping[str, AttributeValue]) -> bool:
        """Whether a write whose answer was lost did land (False when that cannot be told either)."""
        try:
            with storage_errors("confirm write"):
                answer = self._client.get_item(
                    TableName=self._events_table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    ConsistentRead=True,
                    ProjectionExpression="pk",
                )
        except StorageUnavailable:
            return False
        found = "Item" in answer
        logger.warning("write answer lost", extra={"landed": found})
        return found


def index_to_item(
    plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]], retention_s: int
) -> dict[str, AttributeValue]:
    """An index item: the ids of a user's client-named events, in the user's partition."""
    return to_item(
        {
            "pk": event_pk(plugin_id, user_id),
            "sk": index_sk(name),
            "kind": INDEX_KIND,
            "plugin_id": plugin_id,
            "user_id": user_id,
            "entries": [[event_id, at] for event_id, at in entries],
            "expires_at": int(time.time()) + retention_s,
        }
    )


class UserEvents:
    """A user's events as deletion and the right of access find them: the user's partition holds the
    events this service named and index items listing the events the client named (kept under their
    own ids, beside them); the lists not yet moved to an index sit on the aggregates and profile."""

    def __init__(self, client: Any, events_table: str, retention_days: int) -> None:
        self._client = client
        self._table = events_table
        self._retention_s = retention_days * 86_400

    def put_index(self, plugin_id: str, user_id: str, name: str, entries: Sequence[tuple[str, int]]) -> None:
        """Rewriting the same index item (a retried batch) changes nothing."""
        item = index_to_item(plugin_id, user_id, name, entries, self._retention_s)
        with storage_errors("write index"):
            self._client.put_item(TableName=self._table, Item=item)

    def partition(self, plugin_id: str, user_id: str, start: str | None, limit: int) -> PartitionPage:
        """Up to ``limit`` items of the user's partition after sort key ``start``."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": event_pk(plugin_id, user_id)}
        if start is not None:
            condition += " AND sk > :start"
            values[":start"] = start
        answer = query(self._client, self._table, condition, values, "read events", Limit=limit)
        items = [from_item(item) for item in answer.get("Items", [])]
        events = [event_from_values(item) for item in items if is_event(item)]
        named = [
            (str(event_id), int(at))
            for item in items
            if item.get("kind") == INDEX_KIND
            for event_id, at in item.get("entries", [])
        ]
        following = items[-1]["sk"] if "LastEvaluatedKey" in answer and items else None
        return PartitionPage(events, named, [item["sk"] for item in items], following)

    def named(self, plugin_id: str, event_ids: Sequence[str]) -> list[CanonicalEvent]:
        """The client-named events with these ids (those that are gone are left out)."""
        keys = [
            {"pk": {"S": client_id_pk(plugin_id, event_id)}, "sk": {"S": event_id}}
            for event_id in dict.fromkeys(event_ids)
        ]
        found: list[CanonicalEvent] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            pending: dict[str, Any] = {self._table: {"Keys": keys[start : start + BATCH_GET_MAX]}}
            while pending:
                with storage_errors("read events"):
                    answer = self._client.batch_get_item(RequestItems=pending)
                found += [event_from_item(item) for item in answer.get("Responses", {}).get(self._table, [])]
                pending = answer.get("UnprocessedKeys") or {}
        return found

    def forget(self, events: Sequence[CanonicalEvent]) -> None:
        """Delete these stored events, wherever their ids put them (deleting what is gone is a no-op)."""
        keys = {event_key(event) for event in events}
        batch_delete(
            self._client, self._table, [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in sorted(keys)]
        )

    def delete_named(self, plugin_id: str, event_ids: Sequence[str]) -> None:
        keys = [
            {"pk": {"S": client_id_pk(plugin_id, event_id)}, "sk": {"S": event_id}}
            for event_id in dict.fromkeys(event_ids)
        ]
        batch_delete(self._client, self._table, keys)

    def delete_in_partition(self, plugin_id: str, user_id: str, sort_keys: Sequence[str]) -> None:
        pk = event_pk(plugin_id, user_id)
        batch_delete(self._client, self._table, [{"pk": {"S": pk}, "sk": {"S": sk}} for sk in sort_keys])
