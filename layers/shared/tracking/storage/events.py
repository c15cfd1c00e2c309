"""The events table: one item per accepted event, in its user's partition (``keys.event_pk``), so all
of one user's events reach one stream shard; and the rejections recorded for each plugin.

An event whose id this service generated is new by construction. An id the client chose (a Segment
``messageId``, an order number) is unique per plugin, whatever the user: before its event is
written, the id is claimed by a small item under its own key (``keys.client_id_pk``) naming the
partition the event goes to (``store_named``). An older version stored such events under that key
themselves; they still hold their ids.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from tracking.json_text import dumps_compact
from tracking.keys import (
    CLAIM_KIND,
    DELETION_KIND,
    INDEX_KIND,
    REJECTED_KIND,
    client_id_pk,
    event_pk,
)
from tracking.models.canonical import CanonicalEvent, Item
from tracking.models.request import is_client_named
from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.claims import store_named
from tracking.storage.dynamo import (
    AttributeValue,
    Workers,
    check_size,
    error_code,
    from_item,
    storage_errors,
    to_attr,
    to_item,
)
from tracking.storage.dynamo import Item as StoredItem

logger = logging.getLogger(__name__)

TRANSACTION_MAX = 100
# A batch's client-named calls are stored in parallel, each a claim then a put (two round trips): 16
# at a time keep a batch of 100 near the time 8 single puts took (of the client's 64 connections).
PARALLEL_PUTS = 16
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
    return event_pk(event.plugin_id, event.user_id), event.event_id


def stored_keys(event: CanonicalEvent) -> list[tuple[str, str]]:
    """Every key an event may be stored under: in its user's partition, and for an id the client
    chose, under the id (its claim, or the event as an older version stored it)."""
    keys = [event_key(event)]
    if is_client_named(event.event_id):
        keys.append((client_id_pk(event.plugin_id, event.event_id), event.event_id))
    return keys


def write_key(event: CanonicalEvent) -> tuple[str, ...]:
    """What makes two events of one request the same write: a client's id, else the item's key."""
    return (event.event_id,) if is_client_named(event.event_id) else event_key(event)


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
# client-named events, the steps of a deletion (their stream records go to the forget function), and
# the claims of client-named ids.
NOT_EVENTS = frozenset({REJECTED_KIND, INDEX_KIND, DELETION_KIND, CLAIM_KIND})


class EventStore:
    """Writes events so that no answer can make a retry count them twice: an id the client chose is
    claimed, then its event put if absent (``store_named``); generated ids go in transactions (all or
    none); and a write whose answer was lost (a timeout after botocore's retries) is looked up before
    the call is answered 503, so a 503 always means "not stored"."""

    def __init__(
        self,
        client: Any,
        events_table: str,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._events_table = events_table
        self._retention_s = retention_days * 86_400
        self._clock = clock
        self._pool = Workers(PARALLEL_PUTS, "put-events")

    def _item(self, event: CanonicalEvent) -> StoredItem:
        return stored_event_item(event, self._retention_s)

    def put(self, event: CanonicalEvent) -> bool:
        """Store one event; False when it was already stored (an id the client chose, seen before)."""
        return self._put(self._item(event))

    def _put(self, item: StoredItem) -> bool:
        if is_client_named(item["sk"]["S"]):
            return store_named(self, item, int(self._clock() * 1000))
        self._put_atomic([item])
        return True

    # -- ClaimTable -------------------------------------------------------------------------------------

    def put_if_absent(self, item: StoredItem) -> Mapping[str, AttributeValue] | None:
        try:
            with storage_errors("put event"):
                self._client.put_item(
                    TableName=self._events_table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            found: Mapping[str, AttributeValue] | None = exc.response.get("Item") or self._get(item)
            if found is None:  # gone meanwhile (forgotten): nothing to compare with
                raise StorageUnavailable("The stored item changed meanwhile; retry later") from exc
            return found
        except StorageUnavailable:
            # The answer was lost: what is there now is the answer (ours, or what was there before).
            found = self._get_if_known(item)
            if found is None:
                raise
            logger.warning("write answer lost", extra={"landed": True})
            return found
        return None

    def exists(self, pk: str, sk: str) -> bool:
        return self._get({"pk": {"S": pk}, "sk": {"S": sk}}) is not None

    def take_over(self, claim: StoredItem, previous: Mapping[str, AttributeValue]) -> bool:
        try:
            with storage_errors("claim id"):
                self._client.put_item(
                    TableName=self._events_table,
                    Item=claim,
                    ConditionExpression="#owner = :owner AND claimed_at = :at",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":owner": previous["owner"], ":at": previous["claimed_at"]},
                )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _get(self, key: Mapping[str, AttributeValue]) -> Mapping[str, AttributeValue] | None:
        """What a write needs to know of the item at this key (not its content), read consistently."""
        with storage_errors("read event"):
            answer = self._client.get_item(
                TableName=self._events_table,
                Key={"pk": key["pk"], "sk": key["sk"]},
                ConsistentRead=True,
                ProjectionExpression="pk, kind, #owner, claimed_at",
                ExpressionAttributeNames={"#owner": "owner"},
            )
        found: Mapping[str, AttributeValue] | None = answer.get("Item")
        return found

    def _get_if_known(self, key: Mapping[str, AttributeValue]) -> Mapping[str, AttributeValue] | None:
        """As ``_get``; None when that cannot be told either."""
        try:
            return self._get(key)
        except StorageUnavailable:
            return None

    # ---------------------------------------------------------------------------------------------------

    def put_all(self, events: Sequence[CanonicalEvent]) -> None:
        """Store each event once, in few round trips: events the client named each by its claim and a
        conditional put, in parallel (a retry of the call stores only what is missing); the others
        (calls without an id of their own) in transactions of up to 100, so a 503 never leaves part of
        one behind."""
        unique = list({write_key(event): event for event in events}.values())
        # Every item is built (and its size checked) before the first write.
        items = [self._item(event) for event in unique]
        named = [item for item in items if is_client_named(item["sk"]["S"])]
        generated = [item for item in items if not is_client_named(item["sk"]["S"])]
        for start in range(0, len(generated), TRANSACTION_MAX):
            self._put_atomic(generated[start : start + TRANSACTION_MAX])
        self._pool.map(self._put, named)

    def _put_atomic(self, items: Sequence[StoredItem]) -> None:
        try:
            # botocore gives the call one ClientRequestToken for all its attempts, so its own retries
            # of a transaction that did commit change nothing.
            with storage_errors("put events"):
                if len(items) == 1:
                    self._client.put_item(TableName=self._events_table, Item=items[0])
                else:
                    self._client.transact_write_items(
                        TransactItems=[{"Put": {"TableName": self._events_table, "Item": i}} for i in items]
                    )
        except StorageUnavailable:
            if self._landed(items[0]):  # a transaction lands whole or not at all
                return
            raise

    def _landed(self, item: Mapping[str, AttributeValue]) -> bool:
        """Whether a write whose answer was lost did land (False when that cannot be told either)."""
        found = self._get_if_known(item) is not None
        logger.warning("write answer lost", extra={"landed": found})
        return found
