"""The dashboard read model: columns, pages of rows, CSV export, and the chatbot summary."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from tracking.compact import dumps_compact
from tracking.errors import ValidationFailed
from tracking.models.aggregates import REJECTED_GROUP, AggregateState, RollupState, UsersPage
from tracking.models.canonical import is_identifier
from tracking.models.config import Aggregation, PublishedConfig, TrackedKey
from tracking.models.funnel import FUNNEL, funnel_step, is_internal_key
from tracking.models.people import ProfileState, TraitValue
from tracking.models.rejections import RecordedRejection, RejectionRecord, RejectionsPage
from tracking.query.cells import cell, current, json_number
from tracking.query.cursors import decode_cursor, encode_cursor
from tracking.query.people import Gathered, PeopleReader, combined, gather

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Items a page query reads per user beyond the declared keys (undeclared keys, such as widget events
# a chatbot does not show). A user with more makes a page shorter, never wrong.
ITEM_SLACK_PER_USER = 4
GROUPS = ("control", "test")
MAX_SUMMARY_DAYS = 366
MAX_SERIES_DAYS = 400
MAX_SERIES_KEYS = 20
CSV_BUDGET_BYTES = 5_000_000  # of the answer as Lambda sends it (6 MB at most), with room for headers
ROWS_BUDGET_BYTES = 5_000_000  # likewise for a page of rows
# One row as Lambda sends it: a page always holds one, so a row is bounded on its own. A row is far
# below (200 keys of bounded cells), unless clients filled every key with the longest values allowed:
# then the cells past the bound show as truncated (in key order), never an answer Lambda cannot send.
ROW_MAX_BYTES = 1_000_000
TRUNCATED_CELL: dict[str, Any] = {"value": None, "display": "…", "truncated": True}
# The summary's counts per event type: the most frequent first, the rest summed (a Segment source may
# send thousands of event names).
SUMMARY_COUNTS_MAX = 500


class Reader(PeopleReader, Protocol):
    def page_of_users(self, plugin_id: str, after_user: str | None, max_items: int) -> UsersPage: ...
    def rollups(
        self, plugin_id: str, first_day: str, last_day: str, keys: Sequence[str] | None = None
    ) -> list[RollupState]: ...
    def has_rollups(self, plugin_id: str) -> bool: ...
    def users(self, plugin_id: str, after_user: str | None = None) -> Iterator[UsersPage]: ...
    def user_items(
        self, plugin_id: str, user_id: str
    ) -> tuple[list[AggregateState], ProfileState | None]: ...


def columns(published: PublishedConfig, lang: str | None) -> list[dict[str, Any]]:
    return [
        {
            "key": tracked.key,
            "name": tracked.label(lang),
            "aggregation": tracked.aggregations[0],
            "aggregations": list(tracked.aggregations),
            "value_type": tracked.value_type,
        }
        for tracked in published.config.tracking.events
    ]


def chosen_aggregations(published: PublishedConfig, params: Mapping[str, str]) -> dict[str, Aggregation]:
    """``aggregation.<key>=<name>`` picks another of a key's listed aggregations (422 otherwise)."""
    chosen: dict[str, Aggregation] = {}
    problems = []
    for name, value in params.items():
        if not name.startswith("aggregation."):
            continue
        key = name.removeprefix("aggregation.")
        tracked = published.config.tracked_key(key)
        listed: tuple[Aggregation, ...] = tracked.aggregations if tracked else ("increment",)
        match = next((aggregation for aggregation in listed if aggregation == value), None)
        if match is None:
            problems.append({"field": name, "message": f"must be one of {', '.join(listed)}"})
        else:
            chosen[key] = match
    if problems:
        raise ValidationFailed("Unknown aggregation", problems)
    return chosen


def aggregation_for(published: PublishedConfig, key: str, chosen: Mapping[str, Aggregation]) -> Aggregation:
    """The chosen aggregation, else the key's first listed one; undeclared keys are counters."""
    if key in chosen:
        return chosen[key]
    tracked = published.config.tracked_key(key)
    return tracked.aggregations[0] if tracked else "increment"


def row_values(
    states: list[AggregateState],
    published: PublishedConfig,
    chosen: Mapping[str, Aggregation],
    *,
    declared_only: bool,
) -> dict[str, dict[str, Any]]:
    """A row's cells from the aggregates of every id of one person (combined per key, only those
    counted since their key's last reset), in key order."""
    values = {}
    for state in sorted(combined(s for s in states if current(s, published)), key=lambda s: s.key):
        if declared_only and published.config.tracked_key(state.key) is None:
            continue
        shown = cell(state, aggregation_for(published, state.key, chosen))
        if shown is not None:
            values[state.key] = shown
    return values


def bounded_row(values: dict[str, dict[str, Any]], most: int = ROW_MAX_BYTES) -> dict[str, dict[str, Any]]:
    """The cells as a row shows them: past ``most`` bytes as sent, the cells left show as truncated."""
    kept: dict[str, dict[str, Any]] = {}
    size = 0
    for key, shown in values.items():
        weight = response_size(dumps_compact({key: shown}))
        if size + weight > most:
            kept[key] = TRUNCATED_CELL
            size += response_size(dumps_compact({key: TRUNCATED_CELL}))
        else:
            kept[key] = shown
            size += weight
    return kept


def person_states(
    reader: Reader, plugin_id: str, user_id: str, states: list[AggregateState], profile: ProfileState | None
) -> tuple[list[AggregateState], Gathered | None] | None:
    """A listed id's states as its row shows them: None for an id linked into another user (its
    counts show on that user's row); with every linked id's states for a user others were linked to."""
    if profile is None:
        return states, None
    if profile.merged_into is not None:
        return None
    gathered = gather(reader, plugin_id, user_id, states, profile)
    return gathered.all_states(), gathered


# A person's values in one answer (users/{id}): the rest of the answer (profile, ids) is bounded apart.
USER_VALUES_BUDGET_BYTES = 4_000_000


def values_page(
    values: dict[str, dict[str, Any]], cursor: str | None, budget_bytes: int = USER_VALUES_BUDGET_BYTES
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The values (in key order) after the cursor's key that fit the budget as sent, at least one;
    and the cursor of the rest (None when none is left)."""

    def read(fields: dict[str, Any]) -> str | None:
        after = fields.get("after_key")
        return after if isinstance(after, str) else None

    after = decode_cursor(cursor, read)
    page: dict[str, dict[str, Any]] = {}
    size = 0
    for key, shown in values.items():
        if after is not None and key <= after:
            continue
        weight = response_size(dumps_compact({key: shown}))
        if page and size + weight > budget_bytes:
            return page, encode_cursor({"after_key": next(reversed(page))})
        page[key] = shown
        size += weight
    return page, None


def encode_user_cursor(user_id: str) -> str:
    return encode_cursor({"after": user_id})


def decode_user_cursor(cursor: str | None) -> str | None:
    """The user a page of rows (or the CSV's next part) starts after."""

    def read(fields: dict[str, Any]) -> str | None:
        after = fields.get("after")
        return after if isinstance(after, str) and is_identifier(after) else None

    return decode_cursor(cursor, read)


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationFailed(
            "Invalid limit", [{"field": "limit", "message": f"a whole number from 1 to {MAX_LIMIT}"}]
        )
    return int(raw)


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def rows(
    reader: Reader,
    published: PublishedConfig,
    cursor: str | None,
    limit: int,
    chosen: Mapping[str, Aggregation],
    *,
    budget_bytes: int = ROWS_BUDGET_BYTES,
) -> Page:
    """One page of users: one DynamoDB query (the plugin's aggregates sort by user). A page ends
    early, at one row at least, where its answer would outgrow Lambda's response limit."""
    plugin_id = published.plugin_id
    per_user = len(published.config.tracking.events) + ITEM_SLACK_PER_USER
    page = reader.page_of_users(plugin_id, decode_user_cursor(cursor), (limit + 1) * per_user)
    result: list[dict[str, Any]] = []
    last_seen: str | None = None
    size = 0
    users = list(page.users.items())
    for user_id, own in users:
        if len(result) == limit:
            break
        found = person_states(reader, plugin_id, user_id, own, page.profiles.get(user_id))
        values = row_values(found[0], published, chosen, declared_only=True) if found else {}
        if values:
            row = {"user_id": user_id, "values": bounded_row(values)}
            # The row as the reply's JSON text, then as Lambda escapes that text in its answer.
            weight = response_size(dumps_compact(row))
            if result and size + weight > budget_bytes:
                break
            size += weight
            result.append(row)
        last_seen = user_id
    more = page.more or (last_seen is not None and users[-1][0] != last_seen)
    return Page(result, encode_user_cursor(last_seen) if more and last_seen is not None else None)


def _csv_cell(text: str) -> str:
    """Spreadsheets run cells that start like a formula; tracked values are untrusted."""
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            Decimal(text)
        except ArithmeticError:
            return "'" + text
    return text


def export_csv(
    reader: Reader,
    published: PublishedConfig,
    *,
    lang: str | None,
    chosen: Mapping[str, Aggregation],
    cursor: str | None = None,
    budget_bytes: int = CSV_BUDGET_BYTES,
    trait_names: Sequence[str] = (),
) -> tuple[str, str | None]:
    """Every user as an RFC 4180 CSV row (CRLF, quoted where needed), one column per key, then one per
    trait the plugin's profiles hold, reading the plugin's aggregates once (and, for a user others
    were linked to, theirs); past the response budget the rest is one request away (the returned
    cursor)."""
    keys: list[TrackedKey] = list(published.config.tracking.events)
    parts: list[str] = []
    size = 0

    def add(text: str) -> None:
        nonlocal size
        parts.append(text)
        size += response_size(text)

    if cursor is None:
        # The byte order mark lets spreadsheet programs read UTF-8 (emoji included).
        header = ["user_id", *(k.label(lang) for k in keys), *(f"traits.{name}" for name in trait_names)]
        add("\ufeff" + csv_line([_csv_cell(name) for name in header]))
    previous: str | None = None  # the last user of this part
    for page in reader.users(published.plugin_id, decode_user_cursor(cursor)):
        ((user_id, own),) = page.users.items()
        found = person_states(reader, published.plugin_id, user_id, own, page.profiles.get(user_id))
        values = row_values(found[0], published, chosen, declared_only=True) if found else {}
        if values:
            cells = [values.get(k.key, {}).get("display", "") for k in keys]
            if trait_names:
                gathered = found[1] if found else None
                traits = gathered.person().traits if gathered else _own_traits(page.profiles.get(user_id))
                cells += [_trait_text(traits[name].value) if name in traits else "" for name in trait_names]
            line = csv_line([_csv_cell(user_id), *(_csv_cell(text) for text in _bounded_cells(cells))])
            if previous is not None and size + response_size(line) > budget_bytes:
                return "".join(parts), encode_user_cursor(previous)  # this user starts the next part
            add(line)
        previous = user_id
    return "".join(parts), None


def _bounded_cells(cells: list[str], most: int = ROW_MAX_BYTES) -> list[str]:
    """A CSV row's cells, past ``most`` bytes as sent shown as "…" (see ROW_MAX_BYTES)."""
    kept: list[str] = []
    size = 0
    for text in cells:
        weight = response_size(text)
        kept.append(text if size + weight <= most else "…")
        size += weight if size + weight <= most else 1
    return kept


def _own_traits(profile: ProfileState | None) -> dict[str, TraitValue]:
    return profile.traits if profile else {}


def _trait_text(value: Any) -> str:
    return value if isinstance(value, str) else dumps_compact(value)


def csv_line(cells: list[str]) -> str:
    """One RFC 4180 record (quoted where needed, CRLF)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def response_size(text: str) -> int:
    """Bytes ``text`` takes in the function's answer: Lambda hands the proxy result over as JSON with
    every non-ASCII character escaped (an emoji is 12 bytes there), and limits that to 6 MB."""
    return len(json.dumps(text)) - 2


def days_before(day: date, days: int, field: str) -> date:
    try:
        return day - timedelta(days=days)
    except OverflowError:
        raise ValidationFailed("Invalid date", [{"field": field, "message": "too early a date"}]) from None


def parse_day(raw: str | None, field: str, default: date) -> date:
    if raw is None or raw == "":
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(
            "Invalid date", [{"field": field, "message": "a date as YYYY-MM-DD"}]
        ) from None


def day_range(first: str | None, last: str | None, today: date | None, most: int) -> tuple[date, date]:
    """The UTC days ``from``..``to`` asked (the last 30 days by default), at most ``most`` of them."""
    last_day = parse_day(last, "to", today or datetime.now(UTC).date())
    first_day = parse_day(first, "from", days_before(last_day, 29, "to"))
    if first_day > last_day:
        raise ValidationFailed("Invalid range", [{"field": "from", "message": "after 'to'"}])
    if (last_day - first_day).days >= most:
        raise ValidationFailed("Invalid range", [{"field": "from", "message": f"at most {most} days"}])
    return first_day, last_day


def series_keys(published: PublishedConfig | None, raw: str | None) -> list[str]:
    """The keys asked (comma-separated), else the declared ones; at most ``MAX_SERIES_KEYS``."""
    if raw:
        keys = list(dict.fromkeys(key.strip() for key in raw.split(",") if key.strip()))
    else:
        keys = [event.key for event in published.config.tracking.events] if published else []
    if not keys or len(keys) > MAX_SERIES_KEYS:
        raise ValidationFailed(
            "Invalid keys", [{"field": "keys", "message": f"1 to {MAX_SERIES_KEYS} keys, comma-separated"}]
        )
    return keys


def series(
    reader: Reader,
    plugin_id: str,
    published: PublishedConfig | None,
    *,
    keys: list[str],
    first: str | None,
    last: str | None,
    today: date | None = None,
) -> dict[str, Any]:
    """Events and distinct users per key per UTC day, zero-filled, from the rollups (one query). A
    rollup counts a user on a day once, on the event that made the day active for that user and key
    (exact, however many users)."""
    first_day, last_day = day_range(first, last, today, MAX_SERIES_DAYS)
    days = [(first_day + timedelta(days=n)).isoformat() for n in range((last_day - first_day).days + 1)]
    wanted = set(keys)
    totals: dict[tuple[str, str], list[int]] = {}
    for rollup in reader.rollups(plugin_id, days[0], days[-1], keys):
        if rollup.group == REJECTED_GROUP or rollup.key not in wanted or is_internal_key(rollup.key):
            continue
        if published is not None and rollup.reset_at < published.reset_at(rollup.key):
            continue  # counted before the key was reset
        found = totals.setdefault((rollup.key, rollup.day), [0, 0])
        found[0] += rollup.count
        found[1] += rollup.active
    return {
        "plugin_id": plugin_id,
        "from": days[0],
        "to": days[-1],
        "series": {
            key: [
                {
                    "day": day,
                    "events": totals.get((key, day), [0, 0])[0],
                    "users": totals.get((key, day), [0, 0])[1],
                }
                for day in days
            ]
            for key in keys
        },
    }


def summary(
    reader: Reader,
    plugin_id: str,
    published: PublishedConfig | None,
    *,
    first: str | None,
    last: str | None,
    today: date | None = None,
) -> dict[str, Any] | None:
    """Counts per event type, the visitor funnel, A/B groups and revenue in EUR, from the rollups
    of the days asked (UTC). None when the chatbot has neither a config nor ever an event."""
    first_day, last_day = day_range(first, last, today, MAX_SUMMARY_DAYS)
    rollups = [
        r
        for r in reader.rollups(plugin_id, first_day.isoformat(), last_day.isoformat())
        if published is None or r.reset_at >= published.reset_at(r.key)
    ]
    if not rollups and published is None and not reader.has_rollups(plugin_id):
        return None
    counts: dict[str, int] = {}
    users: dict[tuple[str, str], int] = {}
    revenue: dict[str, Decimal] = {}
    rejected: dict[str, int] = {}
    in_funnel = [0] * len(FUNNEL)
    for rollup in rollups:
        if rollup.group == REJECTED_GROUP:
            rejected[rollup.key] = rejected.get(rollup.key, 0) + rollup.count
            continue
        step = funnel_step(rollup.key)
        if step is not None:
            if 1 <= step <= len(FUNNEL):
                in_funnel[step - 1] += rollup.users
            continue
        if is_internal_key(rollup.key):
            continue
        counts[rollup.key] = counts.get(rollup.key, 0) + rollup.count
        users[(rollup.key, rollup.group)] = users.get((rollup.key, rollup.group), 0) + rollup.users
        revenue[rollup.group] = revenue.get(rollup.group, Decimal(0)) + rollup.revenue

    def step_users(key: str, group: str | None = None) -> int:
        return sum(n for (k, g), n in users.items() if k == key and (group is None or g == group))

    # The ordered funnel: the users who first visited in these days, by how far in order they went.
    funnel = []
    first_step = in_funnel[0]
    previous: int | None = None
    for name, reached in zip(FUNNEL, in_funnel, strict=True):
        funnel.append(
            {
                "step": name,
                "users": reached,
                "conversion_from_previous": _ratio(reached, previous) if previous is not None else None,
                "conversion_overall": _ratio(reached, first_step),
            }
        )
        previous = reached
    ab_test = {}
    for group in GROUPS:
        visitors, buyers = step_users("visitor", group), step_users("purchase", group)
        ab_test[group] = {
            "users": visitors,
            "conversions": buyers,
            "conversion_rate": _ratio(buyers, visitors),
            "revenue_eur": _money(revenue.get(group, Decimal(0))),
        }
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown, rest = ranked[:SUMMARY_COUNTS_MAX], ranked[SUMMARY_COUNTS_MAX:]
    other = {"keys": len(rest), "events": sum(n for _, n in rest)} if rest else None
    return {
        "chatbot_id": plugin_id,
        "from": first_day.isoformat(),
        "to": last_day.isoformat(),
        "counts": dict(sorted(shown)),
        "other_counts": other,
        "funnel": funnel,
        "ab_test": ab_test,
        "revenue_eur": _money(sum(revenue.values(), Decimal(0))),
        "rejected": dict(sorted(rejected.items())),
    }


def _ratio(part: int, whole: int | None) -> float | None:
    return round(part / whole, 4) if whole else None


def _money(amount: Decimal) -> int | float:
    return json_number(amount.quantize(Decimal("0.01")))


class RejectionReader(Protocol):
    def newest(
        self, plugin_id: str, before: str | None, max_records: int
    ) -> tuple[list[tuple[str, RejectionRecord]], str | None]: ...


def rejections(reader: RejectionReader, plugin_id: str, cursor: str | None, limit: int) -> RejectionsPage:
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
