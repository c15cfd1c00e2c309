"""The live view's events: each as a user's access export shows it, in the order the view shows
them (newest stored first), bounded."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tracking.json_text import dumps_compact
from tracking.models.canonical import CanonicalEvent

RING_MAX = 200  # events a shard's ring keeps (the route's largest limit)
EVENT_MAX_BYTES = 8_000  # a longer event is kept as its identity, marked truncated


def live_line(event: CanonicalEvent) -> str:
    """An event as a user's access export shows it; past ``EVENT_MAX_BYTES`` (or nested deeper than
    a serializer goes: a client's properties may be), its identity only."""
    try:
        line = dumps_compact(event.model_dump(mode="json"))
    except (ValueError, RecursionError):
        line = ""
    if line and len(line.encode()) <= EVENT_MAX_BYTES:
        return line
    kept = ("event_id", "plugin_id", "user_id", "key", "kind", "dialect", "event_time", "received_at")
    return dumps_compact({**{name: getattr(event, name) for name in kept}, "truncated": True})


def line_order(line: str) -> tuple[int, str]:
    """Where a line sorts, newest first: (received_at, event_id), read from the line."""
    found = json.loads(line)
    return int(found.get("received_at", 0)), str(found.get("event_id", ""))


def merged(*rings: Sequence[str]) -> list[str]:
    """Rings of lines as one, newest first, each event once (a batch delivered again, a ring read
    back), at most ``RING_MAX``."""
    return newest([line for ring in rings for line in ring], RING_MAX)


def newest(lines: Sequence[str], limit: int) -> list[str]:
    """The latest ``limit`` events of a plugin's rings (each shard's, merged), newest first."""
    ordered = sorted({line_order(line): line for line in lines}.items(), reverse=True)
    return [line for _, line in ordered[:limit]]
