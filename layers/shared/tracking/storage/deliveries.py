"""The deliveries table: what became of each message sent to a destination.

- A **marker** per (destination, message): a lease while one delivery sends it, then ``delivered``.
  A queue delivers a message at least once, and the router may enqueue one twice; the marker makes
  an acknowledged message never sent again, and two copies never sent side by side.
- The **failures** of a destination: each message that was not delivered (its last status and
  error, how many attempts), with the message itself, so that a retry sends it again.
- The **counters** of a destination (delivered, failed, pending, the last delivery and the last
  error), spread over ``DELIVERY_SUFFIXES`` items written once per batch, summed at read.

Every item expires (``expires_at``, DynamoDB's TTL): markers after the longest a message is retried and
a margin, failures after ``FAILURE_DAYS``."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from tracking.destinations.models import Claim, Counts, DestinationRef, Failure
from tracking.json_text import dumps_compact
from tracking.keys import (
    DELIVERY_SUFFIXES,
    delivery_marker_key,
    delivery_stats_key,
    failures_pk,
    forgotten_key,
    spread,
)
from tracking.storage.dynamo import (
    batch_delete,
    batch_get,
    batch_put,
    error_code,
    from_item,
    query,
    storage_errors,
    to_item,
)

FAILURE_DAYS = 30
DAY_S = 86_400


class DeliveryStore:
    """``lease_ms``: how long a claim holds a message (longer than one send's timeout); ``keep_s``: how
    long a marker is kept (longer than a message is retried)."""

    def __init__(self, client: Any, table: str, *, lease_ms: int, keep_s: int) -> None:
        self._client = client
        self._table = table
        self._lease_ms = lease_ms
        self._keep_s = keep_s

    # -- markers ----------------------------------------------------------------------------------

    def claim(self, ref: DestinationRef, message_id: str, now_ms: int) -> Claim:
        """Take the lease of sending the message: ``claimed``; or it was ``delivered`` already; or
        another delivery holds a live lease (``busy``)."""
        key = delivery_marker_key(ref.plugin_id, ref.destination_id, message_id)
        until = now_ms + self._lease_ms
        item = to_item(
            {**key, "state": "sending", "until": until, "expires_at": now_ms // 1000 + self._keep_s}
        )
        try:
            with storage_errors("claim delivery"):
                self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk) OR (#s = :sending AND #u < :now)",
                    ExpressionAttributeNames={"#s": "state", "#u": "until"},
                    ExpressionAttributeValues=to_item({":sending": "sending", ":now": now_ms}),
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            held = from_item(exc.response.get("Item") or {})
            return "delivered" if held.get("state") == "delivered" else "busy"
        return "claimed"

    def mark_delivered(self, ref: DestinationRef, message_ids: Sequence[str], now_ms: int) -> None:
        items = [
            to_item(
                {
                    **delivery_marker_key(ref.plugin_id, ref.destination_id, message_id),
                    "state": "delivered",
                    "at": now_ms,
                    "expires_at": now_ms // 1000 + self._keep_s,
                }
            )
            for message_id in message_ids
        ]
        batch_put(self._client, self._table, items)

    def release(self, ref: DestinationRef, message_ids: Sequence[str]) -> None:
        """Give the leases back (the messages were not delivered: a later attempt takes them)."""
        keys = [to_item(delivery_marker_key(ref.plugin_id, ref.destination_id, m)) for m in message_ids]
        batch_delete(self._client, self._table, keys)

    # -- failures ---------------------------------------------------------------------------------

    def add_failures(self, ref: DestinationRef, failures: Sequence[Failure]) -> None:
        items = [
            to_item(
                {
                    "pk": _failures_pk(ref, failure.message_id),
                    "sk": failure.message_id,
                    "attempts": failure.attempts,
                    "last_status": failure.last_status,
                    "last_error": failure.last_error,
                    "at": failure.at,
                    "message": dumps_compact(failure.message),
                    "expires_at": failure.at // 1000 + FAILURE_DAYS * DAY_S,
                }
            )
            for failure in failures
        ]
        batch_put(self._client, self._table, items)

    def failures(
        self, ref: DestinationRef, start: tuple[int, str | None], limit: int
    ) -> tuple[list[Failure], tuple[int, str | None] | None]:
        """Up to ``limit`` failures from ``start`` (a suffix, and the last message id read in it), and
        where the next page starts (None at the end)."""
        suffix, after = start
        found: list[Failure] = []
        while suffix < DELIVERY_SUFFIXES and len(found) < limit:
            options: dict[str, Any] = {"Limit": limit - len(found)}
            if after is not None:
                options["ExclusiveStartKey"] = to_item(
                    {"pk": failures_pk(ref.plugin_id, ref.destination_id, suffix), "sk": after}
                )
            answer = query(
                self._client,
                self._table,
                "pk = :pk",
                {":pk": failures_pk(ref.plugin_id, ref.destination_id, suffix)},
                "read failures",
                **options,
            )
            found.extend(_failure(from_item(item)) for item in answer.get("Items", []))
            last = answer.get("LastEvaluatedKey")
            if last is not None:
                after = str(from_item(last)["sk"])
                if len(found) >= limit:
                    return found, (suffix, after)
                continue
            suffix, after = suffix + 1, None
        return found, ((suffix, None) if suffix < DELIVERY_SUFFIXES else None)

    def remove_failures(self, ref: DestinationRef, message_ids: Sequence[str]) -> None:
        keys = [to_item({"pk": _failures_pk(ref, m), "sk": m}) for m in message_ids]
        batch_delete(self._client, self._table, keys)

    # -- forgotten people -------------------------------------------------------------------------

    def forget_ids(self, plugin_id: str, ids: Sequence[str], at: int) -> None:
        """Mark a person's ids forgotten at ``at``: kept as long as a message or a failure of theirs
        could still be sent."""
        expires_at = at // 1000 + self._keep_s + FAILURE_DAYS * DAY_S
        items = [to_item({**forgotten_key(plugin_id, i), "at": at, "expires_at": expires_at}) for i in ids]
        batch_put(self._client, self._table, items)

    def forgotten(self, plugin_id: str, ids: Sequence[str]) -> dict[str, int]:
        """Which of these ids were forgotten, and when (epoch ms)."""
        found: dict[str, int] = {}
        by_key = {forgotten_key(plugin_id, i)["pk"]: i for i in ids}
        keys = [to_item(forgotten_key(plugin_id, i)) for i in by_key.values()]
        for item in self._batch_get(keys, "read forgotten ids"):
            values = from_item(item)
            found[by_key[str(values["pk"])]] = int(values["at"])
        return found

    def _batch_get(self, keys: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
        return batch_get(self._client, self._table, keys, action)

    # -- counters ---------------------------------------------------------------------------------

    def count(self, ref: DestinationRef, counts: Counts) -> None:
        """Add a batch's counts to one of the destination's counter items (any one: they are summed)."""
        suffix = random.randrange(DELIVERY_SUFFIXES)  # noqa: S311 - a spread, not a secret
        key = delivery_stats_key(ref.plugin_id, ref.destination_id, suffix)
        sets = [
            f"{name} = if_not_exists({name}, :zero) + :{name[0]}"
            for name in ("delivered", "failed", "pending")
        ]
        values: dict[str, Any] = {
            ":zero": 0,
            ":d": counts.delivered,
            ":f": counts.failed,
            ":p": counts.pending,
        }
        if counts.last_delivered_at is not None:
            sets.append("last_delivered_at = :ld")
            values[":ld"] = counts.last_delivered_at
        if counts.last_error is not None:
            sets.append("last_error = :le, last_error_at = :lea")
            values[":le"] = counts.last_error
            values[":lea"] = counts.last_error_at or 0
        with storage_errors("count deliveries"):
            self._client.update_item(
                TableName=self._table,
                Key=to_item(key),
                UpdateExpression="SET " + ", ".join(sets),
                ExpressionAttributeValues=to_item(values),
            )

    def stats(self, ref: DestinationRef) -> dict[str, Any]:
        keys = [
            to_item(delivery_stats_key(ref.plugin_id, ref.destination_id, n))
            for n in range(DELIVERY_SUFFIXES)
        ]
        items = [from_item(item) for item in self._batch_get(keys, "read delivery counters")]
        last_error = max(items, key=lambda item: int(item.get("last_error_at", 0)), default={})
        delivered_at = [int(item["last_delivered_at"]) for item in items if "last_delivered_at" in item]
        return {
            "delivered": sum(int(item.get("delivered", 0)) for item in items),
            "failed": sum(int(item.get("failed", 0)) for item in items),
            "pending": max(0, sum(int(item.get("pending", 0)) for item in items)),
            "last_delivered_at": max(delivered_at, default=None),
            "last_error": last_error.get("last_error"),
        }


def _failures_pk(ref: DestinationRef, message_id: str) -> str:
    return failures_pk(ref.plugin_id, ref.destination_id, spread(message_id, DELIVERY_SUFFIXES))


def _failure(values: dict[str, Any]) -> Failure:
    status = values.get("last_status")
    return Failure(
        message_id=str(values["sk"]),
        attempts=int(values["attempts"]),
        last_status=None if status is None else int(status),
        last_error=str(values.get("last_error", "")),
        at=int(values["at"]),
        message=json.loads(values["message"]),
    )


class PluginFailures:
    """Every failure of a plugin's destinations, a page at a time (a deletion goes through them to
    remove a forgotten person's): the destinations in id order, each one's failures by suffix."""

    def __init__(self, records: DeliveryStore, destinations: Any) -> None:
        self._records = records
        self._destinations = destinations  # storage.destinations.DestinationStore

    def page(
        self, plugin_id: str, cursor: str | None, limit: int
    ) -> tuple[list[tuple[DestinationRef, Failure]], str | None]:
        found = sorted(self._destinations.destinations(plugin_id), key=lambda d: d.destination_id)
        position: dict[str, Any] = json.loads(cursor) if cursor else {"d": 0, "n": 0, "a": None}
        index = int(position["d"])
        if index >= len(found):
            return [], None
        ref = found[index].ref
        failures, following = self._records.failures(ref, (int(position["n"]), position["a"]), limit)
        listed = [(ref, failure) for failure in failures]
        if following is not None:
            return listed, json.dumps({"d": index, "n": following[0], "a": following[1]})
        if index + 1 < len(found):
            return listed, json.dumps({"d": index + 1, "n": 0, "a": None})
        return listed, None

    def remove(self, ref: DestinationRef, message_ids: Sequence[str]) -> None:
        """Remove these failures, and take them off the destination's ``failed`` counter."""
        self._records.remove_failures(ref, message_ids)
        self._records.count(ref, Counts(failed=-len(message_ids)))
