"""Pages of answers: how many per page, the cursor of a page of users, and how many bytes a text
takes in the function's answer (Lambda's 6 MB limit counts it escaped)."""

from __future__ import annotations

import json
from typing import Any

from tracking.api_errors import ValidationFailed
from tracking.models.canonical import is_identifier
from tracking.query.cursors import decode_cursor, encode_cursor

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


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


def response_size(text: str) -> int:
    """Bytes ``text`` takes in the function's answer: Lambda hands the proxy result over as JSON with
    every non-ASCII character escaped (an emoji is 12 bytes there), and limits that to 6 MB."""
    return len(json.dumps(text)) - 2
