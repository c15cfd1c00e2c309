"""Questions the aggregates cannot answer, asked of the lake (shared/API.md, "Raw events"): a breakdown
of one event by a field, and retention by cohort. Pure: each question is one SQL statement with its
parameters, in the standard SQL that DuckDB (locally) and Athena (deployed) both run, and the answer's
body from the rows it returns.

Nothing the caller sends is spliced into SQL. The plugin is the statement's first parameter, taken
from the path the caller was authorized for; ``by`` is a column of a fixed list, or ``properties.``
and a path whose every segment is a plain name, itself bound as a parameter (a JSON path); the event,
the days and the bot switch are parameters too. What is not one of those is a 422.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from tracking.lake.schema import FIRST_DAY, lake_partition

Dialect = Literal["duckdb", "athena"]
Period = Literal["day", "week"]

BREAKDOWN_COLUMNS = frozenset(
    {"browser", "os", "device", "utm_source", "utm_medium", "utm_campaign", "url", "referrer", "type"}
)
PROPERTY_PREFIX = "properties."
PATH_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
PATH_DEPTH_MAX = 8
TOP_VALUES = 50
DEFAULT_DAYS = 30
RANGE_DAYS_MAX = 400
EVENT_MAX = 256


class BadQuestion(ValueError):
    """A question the contract does not allow: the field that says why, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement and its parameters, the plugin always the first."""

    sql: str
    parameters: tuple[str | bool, ...]


@dataclass(frozen=True, slots=True)
class Breakdown:
    event: str
    by: str
    first: str
    last: str
    bots: bool = False

    def statement(self, dialect: Dialect, plugin_id: str) -> Statement:
        value, each = _field(self.by, dialect)
        base = (
            f"SELECT {value} AS value, user_id FROM events{each} "  # noqa: S608 - names from fixed lists
            "WHERE plugin_id = ? AND name = ? AND day BETWEEN ? AND ? AND (? OR NOT coalesce(bot, false))"
        )
        plugin = _plugin(dialect, plugin_id)
        parameters: tuple[str | bool, ...] = (plugin, self.event, self.first, self.last, self.bots)
        if self.by.startswith(PROPERTY_PREFIX):
            parameters = (_json_path(self.by), *parameters)
        top = TOP_VALUES
        sql = (
            # DuckDB reads the events once for both uses of ``base`` (Athena has no such hint).
            f"WITH base AS {'MATERIALIZED ' if dialect == 'duckdb' else ''}({base}), "  # noqa: S608
            "counted AS (SELECT value, count(*) AS events FROM base GROUP BY value), "
            "ranked AS (SELECT value, row_number() OVER (ORDER BY events DESC, value) AS place FROM counted) "
            f"SELECT CASE WHEN r.place <= {top} THEN b.value END AS value, r.place <= {top} AS listed, "
            "count(*) AS events, count(DISTINCT b.user_id) AS users "
            "FROM base b JOIN ranked r ON b.value IS NOT DISTINCT FROM r.value "
            "GROUP BY 1, 2"
        )
        return Statement(sql, parameters)

    def body(self, rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
        counted = [
            (int(events), _text(value), int(users))
            for value, is_listed, events, users in rows
            if _true(is_listed)
        ]
        counted.sort(key=lambda row: (-row[0], row[1] is None, str(row[1])))
        listed = [{"value": value, "events": events, "users": users} for events, value, users in counted]
        rest = [(int(events), int(users)) for _, is_listed, events, users in rows if not _true(is_listed)]
        other = {"events": rest[0][0], "users": rest[0][1]} if rest else {"events": 0, "users": 0}
        return {"event": self.event, "by": self.by, "rows": listed, "other": other}


@dataclass(frozen=True, slots=True)
class Retention:
    first: str
    last: str
    period: Period = "day"
    event: str | None = None

    def statement(self, dialect: Dialect, plugin_id: str) -> Statement:
        named = " AND name = ?" if self.event is not None else ""
        acts = (
            f"SELECT user_id, date_trunc('{self.period}', event_time) AS began FROM events "  # noqa: S608
            f"WHERE plugin_id = ? AND day BETWEEN ? AND ? AND NOT coalesce(bot, false){named}"
        )
        parameters: tuple[str | bool, ...] = (_plugin(dialect, plugin_id), self.first, self.last)
        if self.event is not None:
            parameters = (*parameters, self.event)
        sql = (
            f"WITH acts AS ({acts}), "  # noqa: S608 - the parts above, no value in them
            "firsts AS (SELECT user_id, min(began) AS cohort FROM acts GROUP BY user_id) "
            f"SELECT f.cohort, date_diff('{self.period}', f.cohort, a.began) AS later, "
            "count(DISTINCT a.user_id) AS users "
            "FROM firsts f JOIN acts a ON a.user_id = f.user_id GROUP BY 1, 2 ORDER BY 1, 2"
        )
        return Statement(sql, parameters)

    def body(self, rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
        cohorts: dict[str, list[int]] = {}
        for cohort, later, users in rows:
            returned = cohorts.setdefault(_day(cohort), [])
            while len(returned) <= int(later):
                returned.append(0)
            returned[int(later)] = int(users)
        return {
            "period": self.period,
            "cohorts": [
                {"start": start, "users": returned[0], "returned": returned}
                for start, returned in sorted(cohorts.items())
            ],
        }


@dataclass(frozen=True, slots=True)
class Listing:
    """A replay's events: the keys (user, event id, event time) of a plugin's stored events of
    ``first``..``last`` that a destination's filter passes, bots left out unless the plugin counts
    them, in event time order (then id: a total order, so a listing read in pages after a key misses
    and repeats none)."""

    first: str
    last: str
    types: tuple[str, ...] | None = None
    events: tuple[str, ...] | None = None
    bots: bool = False

    def statement(
        self, dialect: Dialect, plugin_id: str, after: tuple[str, str] | None = None, limit: int | None = None
    ) -> Statement:
        """The listing, or (``after``: an event time as text, and an id; ``limit``) one page of it."""
        where = "plugin_id = ? AND day BETWEEN ? AND ? AND (? OR NOT coalesce(bot, false))"
        parameters: list[str | bool] = [_plugin(dialect, plugin_id), self.first, self.last, self.bots]
        if self.types is not None:
            where += f" AND type IN ({', '.join('?' for _ in self.types)})"
            parameters.extend(self.types)
        if self.events is not None:
            where += f" AND type = 'track' AND name IN ({', '.join('?' for _ in self.events)})"
            parameters.extend(self.events)
        if after is not None:
            where += (
                " AND (event_time > CAST(? AS TIMESTAMP)"
                " OR (event_time = CAST(? AS TIMESTAMP) AND event_id > ?))"
            )
            parameters.extend((after[0], after[0], after[1]))
        sql = f"SELECT user_id, event_id, event_time FROM events WHERE {where} ORDER BY event_time, event_id"  # noqa: S608
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return Statement(sql, tuple(parameters))


@dataclass(frozen=True, slots=True)
class ListingPage:
    """A page of a listing: the (user, event id) keys, and where the next page starts (None: the
    listing is over). An engine still running the listing answers no page at all."""

    keys: list[tuple[str, str]]
    position: str | None


def replay_days(first: Any, last: Any) -> tuple[str, str]:
    """A replay's ``from`` and ``to``: both required, as ``days_of`` allows them."""
    for field, raw in (("from", first), ("to", last)):
        if not isinstance(raw, str) or not raw:
            raise BadQuestion(field, f"{field} is a day, YYYY-MM-DD")
    return days_of({"from": first, "to": last})


def breakdown_of(params: dict[str, str], today: date | None = None) -> Breakdown:
    event = _event(params.get("event"), required=True)
    assert event is not None
    first, last = days_of(params, today)
    bots = params.get("bots")
    if bots not in (None, "include", "exclude"):
        raise BadQuestion("bots", "bots is include or exclude")
    return Breakdown(event, _by(params.get("by")), first, last, bots == "include")


def retention_of(params: dict[str, str], today: date | None = None) -> Retention:
    first, last = days_of(params, today)
    period = params.get("period", "day")
    if period not in ("day", "week"):
        raise BadQuestion("period", "period is day or week")
    return Retention(first, last, "week" if period == "week" else "day", _event(params.get("event")))


def days_of(params: dict[str, str], today: date | None = None) -> tuple[str, str]:
    """``from``..``to`` as UTC days (default: the last 30 days), at most 400 days, from 2000 on."""
    today = today or datetime.now(UTC).date()
    last = _date(params.get("to"), "to") or today
    first = _date(params.get("from"), "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise BadQuestion("from", "from is after to")
    if (last - first).days >= RANGE_DAYS_MAX:
        raise BadQuestion("from", f"a range is at most {RANGE_DAYS_MAX} days")
    if first.isoformat() < FIRST_DAY:
        raise BadQuestion("from", f"the lake starts on {FIRST_DAY}")
    return first.isoformat(), last.isoformat()


def _by(raw: str | None) -> str:
    if raw is None or raw == "":
        raise BadQuestion("by", "by is required")
    if raw in BREAKDOWN_COLUMNS:
        return raw
    if raw.startswith(PROPERTY_PREFIX):
        segments = raw.removeprefix(PROPERTY_PREFIX).split(".")
        if len(segments) <= PATH_DEPTH_MAX and all(PATH_SEGMENT.fullmatch(s) for s in segments):
            return raw
        raise BadQuestion(
            "by", f"a property path is up to {PATH_DEPTH_MAX} names of letters, digits and _, joined by ."
        )
    raise BadQuestion("by", f"by is one of {', '.join(sorted(BREAKDOWN_COLUMNS))} or properties.<path>")


def _field(by: str, dialect: Dialect) -> tuple[str, str]:
    """The value's expression, and what the FROM clause needs for it. A property path reads a JSON
    scalar; one through ``items`` (``properties.items.item_id``) reads it from each item."""
    if not by.startswith(PROPERTY_PREFIX):
        return by, ""  # one of BREAKDOWN_COLUMNS
    if by.startswith(PROPERTY_PREFIX + "items."):
        if dialect == "athena":
            each = " CROSS JOIN UNNEST(CAST(json_extract(properties, '$.items') AS ARRAY(JSON))) AS i (item)"
            return "json_extract_scalar(i.item, ?)", each
        each = (
            " CROSS JOIN (SELECT unnest(CAST(json_extract(properties, '$.items[*]') AS JSON[])) AS item) AS i"
        )
        return "json_extract_string(i.item, ?)", each
    if dialect == "athena":
        return "json_extract_scalar(properties, ?)", ""
    return "json_extract_string(properties, ?)", ""


def _plugin(dialect: Dialect, plugin_id: str) -> str:
    """The plugin as the engine reads its partition: Athena substitutes the value into the path as
    it is (so it is given as the path has it), DuckDB decodes the path's %XX (so the id itself)."""
    return lake_partition(plugin_id) if dialect == "athena" else plugin_id


def _json_path(by: str) -> str:
    path = by.removeprefix(PROPERTY_PREFIX)
    if path.startswith("items."):
        path = path.removeprefix("items.")
    return "$." + path


def _event(raw: str | None, *, required: bool = False) -> str | None:
    if raw is None or raw == "":
        if required:
            raise BadQuestion("event", "event is required")
        return None
    if len(raw) > EVENT_MAX:
        raise BadQuestion("event", f"event is at most {EVENT_MAX} characters")
    return raw


def _date(raw: str | None, field: str) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else _refuse(field)
    except ValueError:
        return _refuse(field)


def _refuse(field: str) -> date:
    raise BadQuestion(field, f"{field} is a day, YYYY-MM-DD")


def _day(value: Any) -> str:
    return value.date().isoformat() if isinstance(value, datetime) else str(value)[:10]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"
