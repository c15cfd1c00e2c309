"""Opaque page cursors: what the next page starts from, as URL-safe base64 of a small JSON object.
A cursor this API did not give (malformed, nested, too long, of the wrong shape) is a 422."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from tracking.api_errors import ValidationFailed

T = TypeVar("T")
MAX_CURSOR_CHARS = 2048


def encode_cursor(fields: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, read: Callable[[dict[str, Any]], T | None]) -> T | None:
    """What ``read`` makes of the cursor's fields (None: they are not a cursor of that kind)."""
    if not cursor:
        return None
    found: T | None = None
    if len(cursor) <= MAX_CURSOR_CHARS:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            fields = json.loads(base64.urlsafe_b64decode(padded.encode()))
            found = read(fields) if isinstance(fields, dict) else None
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
            found = None
    if found is None:
        raise ValidationFailed(
            "Invalid cursor", [{"field": "cursor", "message": "not a cursor this API gave"}]
        )
    return found
