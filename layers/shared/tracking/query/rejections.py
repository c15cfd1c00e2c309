"""The calls refused for a plugin, newest first, a page at a time (a page may end inside a record)."""

from __future__ import annotations

from typing import Any, Protocol

from tracking.models.rejections import RecordedRejection, RejectionRecord, RejectionsPage
from tracking.query.cursors import decode_cursor, encode_cursor


class RejectionReader(Protocol):
    def newest(
        self, plugin_id: str, before: str | None, max_records: int
    ) -> tuple[list[tuple[str, RejectionRecord]], str | None]: ...


def newest_first(reader: RejectionReader, plugin_id: str, cursor: str | None, limit: int) -> RejectionsPage:
    """The plugin's recorded rejections, newest first, ``limit`` at a time."""

    def read(fields: dict[str, Any]) -> tuple[str, int] | None:
        before, skip = fields.get("before"), fields.get("skip")
        if not isinstance(before, str) or not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
            return None
        return before, skip

    before, skip = decode_cursor(cursor, read) or (None, 0)
    found: list[RecordedRejection] = []
    while True:
        records, following = reader.newest(plugin_id, before, limit)
        for position, (key, record) in enumerate(records):
            entries = [RecordedRejection(record.at, record.dialect, r) for r in record.rejections[skip:]]
            room = limit - len(found)
            if len(entries) > room:  # the page ends inside this record
                return RejectionsPage(
                    found + entries[:room], encode_cursor({"before": key, "skip": skip + room})
                )
            found += entries
            skip = 0
            if len(found) == limit:
                nxt = records[position + 1][0] if position + 1 < len(records) else following
                return RejectionsPage(found, encode_cursor({"before": nxt, "skip": 0}) if nxt else None)
        if following is None:
            return RejectionsPage(found, None)
        before = following
