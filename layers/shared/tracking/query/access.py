"""The right of access: every stored event of a person (each of their ids), as NDJSON in event-time
order, a page at a time.

A person's events are found without a scan: each id's partition holds the events this service named
and index items listing the events the client named; the lists not yet moved to an index sit on the
id's aggregates and profile. Each page lists them all (keys and times), sorts them, and reads only
the events of the page; the cursor is the (time, id) of the last line sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from tracking.json_text import dumps_compact
from tracking.models.aggregates import AggregateState
from tracking.models.canonical import CanonicalEvent
from tracking.models.people import PartitionPage, ProfileState
from tracking.query.cursors import decode_cursor, encode_cursor
from tracking.query.paging import response_size
from tracking.query.people import Gathered

PARTITION_PAGE = 1_000
ACCESS_PAGE = 500
# A page as Lambda sends it (6 MB at most): it ends early, at one event at least, past this.
ACCESS_BUDGET_BYTES = 5_000_000


class EventsReader(Protocol):
    def partition(self, plugin_id: str, user_id: str, start: str | None, limit: int) -> PartitionPage: ...
    def named(self, plugin_id: str, event_ids: Sequence[str]) -> list[CanonicalEvent]: ...


def event_line(event: CanonicalEvent) -> str:
    return dumps_compact(event.model_dump(mode="json")) + "\n"


def _after(cursor: str | None) -> tuple[int, str] | None:
    def read(fields: dict[str, Any]) -> tuple[int, str] | None:
        at, event_id = fields.get("at"), fields.get("id")
        if isinstance(at, int) and isinstance(event_id, str):
            return at, event_id
        return None

    return decode_cursor(cursor, read)


def access_page(
    events: EventsReader,
    plugin_id: str,
    person: Gathered,
    cursor: str | None,
    *,
    limit: int = ACCESS_PAGE,
    budget_bytes: int = ACCESS_BUDGET_BYTES,
) -> tuple[str, str | None]:
    """One page of the person's events as NDJSON, and the cursor of the next page (None at the end)."""
    after = _after(cursor)
    listed: dict[tuple[int, str], CanonicalEvent | None] = {}
    for user_id in person.ids:
        start: str | None = None
        while True:
            page = events.partition(plugin_id, user_id, start, PARTITION_PAGE)
            listed.update({(at, event_id): None for event_id, at in page.named})
            listed.update({(event.event_time, event.event_id): event for event in page.events})
            start = page.following
            if start is None:
                break
    holders: list[AggregateState | ProfileState] = [*person.all_states(), *person.profiles.values()]
    for holder in holders:
        listed.update({(at, event_id): listed.get((at, event_id)) for event_id, at in holder.pending_ids})
    ordered = sorted(key for key in listed if after is None or key > after)
    chosen = ordered[:limit]
    missing = [event_id for at, event_id in chosen if listed[(at, event_id)] is None]
    for event in events.named(plugin_id, missing):
        listed[(event.event_time, event.event_id)] = event
    lines: list[str] = []
    size = 0
    for position, key in enumerate(chosen):
        found = listed.get(key)
        if found is None:
            continue
        line = event_line(found)
        weight = response_size(line)
        if lines and size + weight > budget_bytes:
            last = chosen[position - 1]  # the next page starts with this event
            return "".join(lines), encode_cursor({"at": last[0], "id": last[1]})
        lines.append(line)
        size += weight
    following = encode_cursor({"at": chosen[-1][0], "id": chosen[-1][1]}) if len(ordered) > limit else None
    return "".join(lines), following
