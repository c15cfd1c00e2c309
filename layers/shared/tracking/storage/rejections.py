"""Recorded rejections, in the events table beside the events: one item per request that had any
(its stream record is how the aggregator counts them per code and day), under the plugin's own
partition, newest first by key, kept 30 days."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from tracking.json_text import dumps_compact
from tracking.keys import REJECTED_KIND, rejection_sk, rejections_pk
from tracking.models.rejections import RETENTION_DAYS, Rejection, RejectionRecord
from tracking.storage.dynamo import from_item, query, storage_errors, to_item

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
    return to_item(
        {
            "pk": rejections_pk(record.plugin_id),
            "sk": sk or rejection_sk(record.at, secrets.token_hex(6)),
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


class RejectionStore:
    def __init__(self, client: Any, events_table: str) -> None:
        self._client = client
        self._table = events_table

    def record(self, record: RejectionRecord) -> None:
        with storage_errors("record rejections"):
            self._client.put_item(TableName=self._table, Item=record_to_item(record))

    def page(
        self, plugin_id: str, after: str | None, max_records: int
    ) -> tuple[list[tuple[str, RejectionRecord]], str | None]:
        """Up to ``max_records`` records of the plugin, oldest first, after key ``after``; and the key
        to continue after (None at the end)."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": rejections_pk(plugin_id)}
        if after is not None:
            condition += " AND sk > :after"
            values[":after"] = after
        answer = query(self._client, self._table, condition, values, "read rejections", Limit=max_records)
        found = [(item["sk"], record_from_values(item)) for item in map(from_item, answer.get("Items", []))]
        following = found[-1][0] if "LastEvaluatedKey" in answer and found else None
        return found, following

    def replace(self, sk: str, record: RejectionRecord) -> None:
        """Keep a record with fewer rejections listed (its counts stay: they name nobody); with none
        left, the record goes. A rewrite is a MODIFY on the stream, which counts nothing again."""
        if record.rejections:
            with storage_errors("rewrite rejections"):
                self._client.put_item(TableName=self._table, Item=record_to_item(record, sk))
        else:
            with storage_errors("delete rejections"):
                self._client.delete_item(
                    TableName=self._table, Key=to_item({"pk": rejections_pk(record.plugin_id), "sk": sk})
                )

    def newest(
        self, plugin_id: str, before: str | None, max_records: int
    ) -> tuple[list[tuple[str, RejectionRecord]], str | None]:
        """Up to ``max_records`` records of the plugin, newest first, starting at key ``before``
        (inclusive) when given; with each record its key, and the key of the next one if any."""
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": rejections_pk(plugin_id)}
        if before is not None:
            condition += " AND sk <= :before"
            values[":before"] = before
        options = {"ScanIndexForward": False, "Limit": max_records + 1}
        answer = query(self._client, self._table, condition, values, "read rejections", **options)
        items = [from_item(item) for item in answer.get("Items", [])]
        found = [(item["sk"], record_from_values(item)) for item in items[:max_records]]
        following = items[max_records]["sk"] if len(items) > max_records else None
        return found, following
