"""The CSV export: every user as an RFC 4180 row, in parts that each fit Lambda's answer."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from tracking.json_text import dumps_compact
from tracking.models.config import Aggregation, PublishedConfig, TrackedKey
from tracking.models.people import ProfileState, TraitValue
from tracking.query.paging import decode_user_cursor, encode_user_cursor, response_size
from tracking.query.rows import ROW_MAX_BYTES, Reader, person_states, row_values

CSV_BUDGET_BYTES = 5_000_000  # of the answer as Lambda sends it (6 MB at most), with room for headers


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
