"""The lake's one schema: the columns of every stored event's row (shared/API.md, "Raw events: the
lake"), in the order the files hold them, and the two partition columns the layout
``events/plugin_id=<p>/day=<YYYY-MM-DD>/`` names. The Glue table in template.yaml, the local Parquet
writer and the ``events`` view are all rendered from this list (a test checks the template's).

A row is built from the canonical event as stored: nothing is added that the events table does not
hold, so the lake says what the service stored, once per event (a delivery's duplicates are removed
by ``event_id`` where the lake is read)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tracking.json_text import dumps_compact
from tracking.models.canonical import CanonicalEvent

ColumnType = Literal["string", "boolean", "timestamp"]

# (name, type as Glue names it), the files' order.
COLUMNS: tuple[tuple[str, ColumnType], ...] = (
    ("event_id", "string"),
    ("dialect", "string"),
    ("type", "string"),
    ("name", "string"),
    ("user_id", "string"),
    ("anonymous_id", "string"),
    ("value", "string"),
    ("properties", "string"),
    ("traits", "string"),
    ("context", "string"),
    ("event_time", "timestamp"),
    ("received_at", "timestamp"),
    ("bot", "boolean"),
    ("browser", "string"),
    ("os", "string"),
    ("device", "string"),
    ("ip", "string"),
    ("url", "string"),
    ("referrer", "string"),
    ("utm_source", "string"),
    ("utm_medium", "string"),
    ("utm_campaign", "string"),
)
# The partitions, in the path's order: not in the files, read from the path (Hive style).
PARTITIONS: tuple[tuple[str, ColumnType], ...] = (("plugin_id", "string"), ("day", "string"))
DUCKDB_TYPES: dict[ColumnType, str] = {"string": "VARCHAR", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP"}
# Athena's (Trino's) names for the types, as a view's definition in the Glue catalog states them.
PRESTO_TYPES: dict[ColumnType, str] = {"string": "varchar", "boolean": "boolean", "timestamp": "timestamp(3)"}
# On AWS the files are the Glue table ``events_raw``, and ``events`` is a view over it that shows each
# event once. A delivery's repeat is the same stored event's row again, whole, so DISTINCT removes it;
# a filter on ``plugin_id`` and ``day`` (grouping keys) still reaches the table's partition projection.
RAW_TABLE = "events_raw"
VIEW = "events"
FIRST_DAY = "2000-01-01"  # the earliest event time the contract lets a call carry (the partition range)

_PLAIN = re.compile(r"[A-Za-z0-9_-]")
_CAMPAIGN = {"utm_source": "source", "utm_medium": "medium", "utm_campaign": "name"}


def athena_view_sql() -> str:
    names = ", ".join(name for name, _ in (*COLUMNS, *PARTITIONS))
    return f"SELECT DISTINCT {names} FROM {RAW_TABLE}"  # noqa: S608 - the schema's own names


def athena_view(database: str) -> dict[str, Any]:
    """The view ``events`` as Athena stores a view in the Glue catalog (its "Presto View" text, in
    template.yaml base64-encoded): its SQL, its database, and its columns with Athena's types."""
    return {
        "originalSql": athena_view_sql(),
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": [{"name": name, "type": PRESTO_TYPES[kind]} for name, kind in (*COLUMNS, *PARTITIONS)],
    }


def day_of(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d")


def lake_partition(plugin_id: str) -> str:
    """A plugin as the lake's paths (and so its ``plugin_id`` column) name it: the id itself when it
    is letters, digits, ``_`` and ``-``; any other character as its UTF-8 bytes in %XX. A plugin id
    may hold ``/`` or ``..``: no id names a path outside its own partition."""
    return "".join(c if _PLAIN.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in plugin_id)


def partition_keys(event: CanonicalEvent) -> dict[str, str]:
    """Where the event's row goes: its plugin, and the UTC day of its event time."""
    return {"plugin_id": lake_partition(event.plugin_id), "day": day_of(event.event_time)}


def lake_row(event: CanonicalEvent) -> dict[str, Any]:
    """The event's row: every column, times as epoch milliseconds (the writers' timestamp input)."""
    context = event.context
    page = _mapping(context.get("page"))
    agent = _mapping(context.get("agent"))  # the ingest's classification of the call's agent
    url = _text(page.get("url")) or _text(event.properties.get("url"))
    referrer = _text(page.get("referrer")) or _text(context.get("referer"))
    row: dict[str, Any] = {
        "event_id": event.event_id,
        "dialect": event.dialect,
        "type": event.kind,
        "name": event.key,
        "user_id": event.user_id,
        "anonymous_id": event.anonymous_id,
        "value": None if event.value is None else _value_text(event.value),
        "properties": dumps_compact(_properties(event)),
        "traits": dumps_compact(event.traits),
        "context": dumps_compact(context),
        "event_time": event.event_time,
        "received_at": event.received_at,
        "bot": context.get("bot") is True,
        "browser": _text(agent.get("browser")),
        "os": _text(agent.get("os")),
        "device": _text(agent.get("device")),
        "ip": _text(context.get("ip")),
        "url": url,
        "referrer": referrer,
    }
    row.update(_campaign(context, url))
    return row


def _properties(event: CanonicalEvent) -> dict[str, Any]:
    """The call's properties; a widget's items, which the event keeps apart, as ``items``."""
    if event.items and "items" not in event.properties:
        return {**event.properties, "items": [item.model_dump(mode="json") for item in event.items]}
    return event.properties


def _campaign(context: dict[str, Any], url: str | None) -> dict[str, str | None]:
    """A Segment call's ``context.campaign``, else the ``utm_*`` parameters of the page's URL."""
    campaign = _mapping(context.get("campaign"))
    found = {column: _text(campaign.get(field)) for column, field in _CAMPAIGN.items()}
    if any(found.values()) or not url:
        return found
    query = parse_qs(urlsplit(url).query)
    return {column: next(iter(query.get(column, [])), None) for column in _CAMPAIGN}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _value_text(value: Any) -> str:
    """A scalar as text: a string as it is, a number as written (``4``, ``4.5``), ``true``/``false``."""
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
