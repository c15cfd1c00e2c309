"""Recorded rejections, in the events table beside the events: one item per request that had any
(its stream record is how the aggregator counts them per code and day), spread over the plugin's
rejection partitions by a hash of the key (``keys.rejection_pk``), listed by time across all of them,
kept 30 days. Records written before the spread sit in the plugin's one partition of old: listings
read it too, and a rewrite finds a record there when it is not where its key says."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from tracking.json_text import dumps_compact
from tracking.keys import REJECTED_KIND, REJECTION_PARTITIONS, rejection_pk, rejection_sk, rejections_pk
from tracking.models.rejections import RETENTION_DAYS, Rejection, RejectionRecord
from tracking.storage.dynamo import Workers, error_code, from_item, query, storage_errors, to_item

# Entries of one record beyond this many bytes are counted, not kept: one request, one small write.
RECORD_MAX_BYTES = 8_000


def record_to_item(record: RejectionRecord, sk: str | None = None) -> dict[str, Any]:
    """The item of a record (a new one, newest by key, unless ``sk`` names the one it replaces)."""
    entries: list[dict[str, Any]] = []
    size = 0
    for rejection in record.rejections:
        entry = {
            "code": rejection.code,
            "message": rejection.message,
            "details": [dict(detail) for detail in rejection.details],
            "payload": rejection.payload,
            "index": rejection.index,
            "messageId": rejection.message_id,
        }
        size += len(dumps_compact(entry).encode())
        if entries and size > RECORD_MAX_BYTES:
            break
        entries.append(entry)
    key = sk or rejection_sk(record.at, secrets.token_hex(6))
    return to_item(
        {
            "pk": rejection_pk(record.plugin_id, key),
            "sk": key,
            "kind": REJECTED_KIND,
            "plugin_id": record.plugin_id,
            "at": record.at,
            "dialect": record.dialect,
            "counts": dict(record.counts),
            "entries": dumps_compact(entries) if entries else None,
            "expires_at": record.at // 1000 + RETENTION_DAYS * 86_400,
        }
    )


def record_from_values(values: Mapping[str, Any]) -> RejectionRecord:
    """A recorded request back, from its item (numbers as ``Decimal``)."""
    rejections = tuple(
        Rejection(
            code=entry["code"],
            message=entry["message"],
            details=tuple(entry.get("details") or ()),
            payload=entry.get("payload") or "",
            index=entry.get("index"),
            message_id=entry.get("messageId"),
        )
        for entry in json.loads(values.get("entries") or "[]")
    )
    return RejectionRecord(
        plugin_id=values["plugin_id"],
        at=int(values["at"]),
        dialect=values["dialect"],
        rejections=rejections,
        counts={code: int(n) for code, n in values.get("counts", {}).items()},
    )


Found = list[tuple[str, RejectionRecord]]
# One partition's page: its items (oldest or newest first) and whether it holds more.
PartitionPage = tuple[list[dict[str, Any]], bool]


def merged_page(
    pages: Sequence[PartitionPage], max_records: int, *, newest: bool
) -> tuple[Found, str | None]:
    """The first ``max_records`` records of several partitions' pages in key order (newest or oldest
    first), and where the next page starts: every partition's page began where this one does and
    held its first ``max_records`` (``+ 1`` newest first), so no record it left out can come before
    the last one kept."""
    items = sorted(
        (item for found, _ in pages for item in found), key=lambda item: item["sk"], reverse=newest
    )
    kept = [(item["sk"], record_from_values(item)) for item in items[:max_records]]
    if newest:  # the next page starts at (and includes) the first record left out
        return kept, items[max_records]["sk"] if len(items) > max_records else None
    more = len(items) > max_records or any(more for _, more in pages)
    return kept, kept[-1][0] if more and kept else None


class RejectionStore:
    def __init__(self, client: Any, events_table: str) -> None:
        self._client = client
        self._table = events_table
        self._pool = Workers(len(REJECTION_PARTITIONS), "rejections")

    def record(self, record: RejectionRecord) -> None:
        with storage_errors("record rejections"):
            self._client.put_item(TableName=self._table, Item=record_to_item(record))

    def _pages(self, plugin_id: str, read: Callable[[str], dict[str, Any]]) -> list[PartitionPage]:
        answers = self._pool.map(read, [rejections_pk(plugin_id, n) for n in REJECTION_PARTITIONS])
        return [([from_item(i) for i in a.get("Items", [])], "LastEvaluatedKey" in a) for a in answers]

    def page(self, plugin_id: str, after: str | None, max_records: int) -> tuple[Found, str | None]:
        """Up to ``max_records`` records of the plugin, oldest first, after key ``after``; and the key
        to continue after (None at the end)."""

        def read(pk: str) -> dict[str, Any]:
            condition = "pk = :pk" + (" AND sk > :after" if after is not None else "")
            values = {":pk": pk, **({":after": after} if after is not None else {})}
            return query(self._client, self._table, condition, values, "read rejections", Limit=max_records)

        return merged_page(self._pages(plugin_id, read), max_records, newest=False)

    def newest(self, plugin_id: str, before: str | None, max_records: int) -> tuple[Found, str | None]:
        """Up to ``max_records`` records of the plugin, newest first, starting at key ``before``
        (inclusive) when given; with each record its key, and the key of the next one if any."""

        def read(pk: str) -> dict[str, Any]:
            condition = "pk = :pk" + (" AND sk <= :before" if before is not None else "")
            values = {":pk": pk, **({":before": before} if before is not None else {})}
            options = {"ScanIndexForward": False, "Limit": max_records + 1}
            return query(self._client, self._table, condition, values, "read rejections", **options)

        return merged_page(self._pages(plugin_id, read), max_records, newest=True)

    def replace(self, sk: str, record: RejectionRecord) -> None:
        """Keep a record with fewer rejections listed (its counts stay: they name nobody); with none
        left, the record goes. A rewrite is a MODIFY on the stream, which counts nothing again. The
        record is where its key says, or in the plugin's partition of old."""
        for pk in (rejection_pk(record.plugin_id, sk), rejections_pk(record.plugin_id, None)):
            key = {"pk": {"S": pk}, "sk": {"S": sk}}
            try:
                with storage_errors("rewrite rejections"):
                    if record.rejections:
                        item = {**record_to_item(record, sk), **key}
                        self._client.put_item(
                            TableName=self._table, Item=item, ConditionExpression="attribute_exists(pk)"
                        )
                    else:
                        self._client.delete_item(
                            TableName=self._table, Key=key, ConditionExpression="attribute_exists(pk)"
                        )
                return
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
