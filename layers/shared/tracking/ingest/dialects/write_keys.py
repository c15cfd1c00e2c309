"""Where a Segment-spec call's write key is: HTTP Basic (or Bearer), the body, a batch's first call,
or the query string; and whether a text can be a write key at all."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tracking.api_errors import Unauthorized
from tracking.models.config import WRITE_KEY


def write_key_from(authorization: str | None, payload: dict[str, Any], in_query: str | None = None) -> str:
    """HTTP Basic with the write key as user name (or a Bearer write key, as Customer.io's libraries
    send region keys), else ``writeKey`` in the body, else in a batch's first call (analytics.js), else
    in the query string (RudderStack's beacon: ``navigator.sendBeacon`` sends no headers)."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            return credentials
        if scheme.lower() != "basic" or not credentials:
            raise Unauthorized("Authorization must be HTTP Basic with the write key as user name")
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("Authorization is not valid base64") from None
        key = decoded.partition(":")[0]
    else:
        key = _body_write_key(payload) or in_query or ""
    if not key:
        raise Unauthorized("A write key is required (HTTP Basic user name or writeKey)")
    return key


def _body_write_key(payload: dict[str, Any]) -> str:
    raw = payload.get("writeKey")
    calls = payload.get("batch")
    if raw is None and isinstance(calls, list) and calls and isinstance(calls[0], dict):
        raw = calls[0].get("writeKey")
    return raw if isinstance(raw, str) else ""


def is_write_key(text: str) -> bool:
    return WRITE_KEY.match(text) is not None
