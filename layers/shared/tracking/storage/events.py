"""The events table: one item per accepted event, keyed so a retried call lands on the same item."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from tracking.compact import dumps_compact
from tracking.models.canonical import CanonicalEvent, Item
from tracking.models.failures import StorageUnavailable
from tracking.models.request import GENERATED_PREFIX
from tracking.storage.dynamo import (
    AttributeValue,
    cancellation_codes,
    error_code,
    from_item,
    storage_errors,
    to_attr,
    to_item,
)

logger = logging.getLogger(__name__)

# Keys join identifiers with a control character, which identifiers may not contain.
SEP = "\x1f"
BATCH_WRITE_MAX = 25
TRANSACTION_MAX = 100
UNPROCESSED_RETRIES = 6


def event_pk(plugin_id: str, user_id: str) -> str:
    """Partition by (plugin, user): every event of one user reaches the aggregator in order."""
    return f"{plugin_id}{SEP}{user_id}"


def order_marker_pk(plugin_id: str, order_id: str) -> str:
    return f"order{SEP}{plugin_id}{SEP}{order_id}"


def event_to_item(event: CanonicalEvent, expires_at: int) -> dict[str, AttributeValue]:
    values: dict[str, Any] = {
        "pk": event_pk(event.plugin_id, event.user_id),
        "sk": event.event_id,
        "plugin_id": event.plugin_id,
        "user_id": event.user_id,
        "key": event.key,
        "kind": event.kind,
        "dialect": event.dialect,
        "value": event.value,
        "event_time": event.event_time,
        "received_at": event.received_at,
        "ab_group": event.ab_group,
        "commerce": event.commerce,
        "currency": event.currency,
        "order_id": event.order_id,
        "expires_at": expires_at,
    }
    if event.items:
        values["items"] = [item.model_dump(exclude_none=True) for item in event.items]
    if event.properties:
        values["properties"] = dumps_compact(event.properties)
    if event.context:
        values["context"] = dumps_compact(event.context)
    item = to_item(values)
    if event.items or event.commerce:
        # Stored even when null: an unknown currency is recorded as "no known value", never guessed.
        item["total_value_base"] = to_attr(event.total_value_base)
    return item


def event_from_item(item: Mapping[str, AttributeValue]) -> CanonicalEvent:
    """The canonical event back from a stored item or a stream record's ``NewImage``."""
    return event_from_values(from_item(item))


def event_from_values(values: dict[str, Any]) -> CanonicalEvent:
    """The canonical event from an item already turned into Python values (numbers as ``Decimal``)."""
    import json  # noqa: PLC0415

    values = dict(values)
    for name in ("properties", "context"):
        values[name] = json.loads(values[name]) if name in values else {}
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


class EventStore:
    def __init__(
        self,
        client: Any,
        events_table: str,
        control_table: str,
        retention_days: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._events_table = events_table
        self._control_table = control_table
        self._retention_s = retention_days * 86_400
        self._sleep = sleep

    def _expires_at(self, event: CanonicalEvent) -> int:
        return event.received_at // 1000 + self._retention_s

    def put(self, event: CanonicalEvent) -> bool:
        """Store one event; False when it was already stored (same id, or same order number)."""
        item = event_to_item(event, self._expires_at(event))
        if event.counts_once_per_order:
            return self._put_order(event, item)
        # An id this service just generated is new by construction; an id the client chose (a
        # Segment messageId) may be a retry, which must leave the stored event as it was.
        condition = (
            {}
            if event.event_id.startswith(GENERATED_PREFIX)
            else {"ConditionExpression": "attribute_not_exists(pk)"}
        )
        try:
            with storage_errors("put event"):
                self._client.put_item(TableName=self._events_table, Item=item, **condition)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _put_order(self, event: CanonicalEvent, item: dict[str, AttributeValue]) -> bool:
        """The event and its (plugin, order) marker, written together or not at all."""
        assert event.order_id is not None
        marker = to_item(
            {
                "pk": order_marker_pk(event.plugin_id, event.order_id),
                "sk": "order",
                "event_pk": item["pk"]["S"],
                "event_sk": event.event_id,
                "expires_at": self._expires_at(event),
            }
        )
        try:
            with storage_errors("put order"):
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._control_table,
                                "Item": marker,
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._events_table,
                                "Item": item,
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException" and cancellation_codes(exc) == {
                "ConditionalCheckFailed"
            }:
                return False
            raise
        return True

    def put_batch(self, events: Sequence[CanonicalEvent], *, atomic: bool = False) -> None:
        """Store many events in few round trips.

        ``atomic`` writes all or none (one transaction, at most 100): for calls whose events carry no id
        of their own, so a 503 never leaves half a batch that a retry would count twice. Otherwise
        ``BatchWriteItem``: a re-sent batch lands on the same keys and counts once.
        """
        unique: dict[tuple[str, str], CanonicalEvent] = {}
        for event in events:
            unique.setdefault((event_pk(event.plugin_id, event.user_id), event.event_id), event)
        plain = [event for event in unique.values() if not event.counts_once_per_order]
        for event in unique.values():
            if event.counts_once_per_order:
                self.put(event)
        if not plain:
            return
        if len(plain) == 1:
            self.put(plain[0])
        elif atomic:
            self._transact(plain)
        else:
            self._batch_write(plain)

    def _transact(self, events: Sequence[CanonicalEvent]) -> None:
        if len(events) > TRANSACTION_MAX:
            raise ValueError(f"at most {TRANSACTION_MAX} events are written atomically")
        with storage_errors("put events"):
            self._client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._events_table, "Item": event_to_item(e, self._expires_at(e))}}
                    for e in events
                ]
            )

    def _batch_write(self, events: Iterable[CanonicalEvent]) -> None:
        requests = [{"PutRequest": {"Item": event_to_item(e, self._expires_at(e))}} for e in events]
        for start in range(0, len(requests), BATCH_WRITE_MAX):
            pending = requests[start : start + BATCH_WRITE_MAX]
            for attempt in range(UNPROCESSED_RETRIES + 1):
                with storage_errors("put events"):
                    answer = self._client.batch_write_item(RequestItems={self._events_table: pending})
                pending = answer.get("UnprocessedItems", {}).get(self._events_table, [])
                if not pending:
                    break
                if attempt == UNPROCESSED_RETRIES:
                    raise StorageUnavailable("Storage is throttling writes; retry the batch later")
                self._sleep(min(0.05 * 2**attempt, 1.0))
