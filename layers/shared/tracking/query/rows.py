"""The dashboard's table: its columns, a page of rows (one query), one person's values, each row and
answer bounded to what Lambda can send."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tracking.api_errors import ValidationFailed
from tracking.json_text import dumps_compact
from tracking.models.aggregates import AggregateState, RollupState, UsersPage
from tracking.models.config import Aggregation, PublishedConfig
from tracking.models.people import ProfileState
from tracking.query.cells import cell, current
from tracking.query.cursors import decode_cursor, encode_cursor
from tracking.query.paging import decode_user_cursor, encode_user_cursor, response_size
from tracking.query.people import Gathered, PeopleReader, combined, gather

# Items a page query reads per user beyond the declared keys (undeclared keys, such as widget events
# a chatbot does not show). A user with more makes a page shorter, never wrong.
ITEM_SLACK_PER_USER = 4
ROWS_BUDGET_BYTES = 5_000_000  # of a page of rows as Lambda sends it (6 MB at most)
# One row as Lambda sends it: a page always holds one, so a row is bounded on its own. A row is far
# below (200 keys of bounded cells), unless clients filled every key with the longest values allowed:
# then the cells past the bound show as truncated (in key order), never an answer Lambda cannot send.
ROW_MAX_BYTES = 1_000_000
TRUNCATED_CELL: dict[str, Any] = {"value": None, "display": "…", "truncated": True}


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


def chosen_aggregations(published: PublishedConfig, asked: Mapping[str, str]) -> dict[str, Aggregation]:
    """``aggregation.<key>=<name>`` (``asked``: key to name) picks another of a key's listed
    aggregations (422 otherwise)."""
    chosen: dict[str, Aggregation] = {}
    problems = []
    for key, value in asked.items():
        tracked = published.config.tracked_key(key)
        listed: tuple[Aggregation, ...] = tracked.aggregations if tracked else ("increment",)
        match = next((aggregation for aggregation in listed if aggregation == value), None)
        if match is None:
            problems.append({"field": f"aggregation.{key}", "message": f"must be one of {', '.join(listed)}"})
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


@dataclass
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def page_of_rows(
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
