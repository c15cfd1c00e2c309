"""Client payloads, read the one way every route reads them: the body decoded (base64, then
``Content-Encoding: gzip`` or ``deflate`` inflated with a hard cap), its size checked, then parsed
strictly, and its hygiene checked wherever it is nested (so no dialect, and no later read of what
was stored, can meet what this refuses):

- malformed JSON, or nesting that would blow the stack: 400 ``ANALYTICS_001``;
- a string (a key or a value, at any depth) holding a lone surrogate or a NUL: 400 ``ANALYTICS_001``
  (it could be stored but never encoded again, by a read, an export or the page);
- a number DynamoDB cannot hold exactly (beyond 38 significant digits, magnitude above 9.99e125,
  non-zero below 1e-130), ``NaN`` or ``Infinity``: 422 ``VALIDATION`` naming each field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from decimal import Decimal, InvalidOperation
from typing import Any

from tracking.errors import BadRequest, PayloadTooLarge, ValidationFailed, field_path

GZIP_MAGIC = b"\x1f\x8b"


def body_text(body: str, *, base64_encoded: bool, content_encoding: str | None, max_bytes: int) -> str:
    """The body as text, at most ``max_bytes`` once decoded and inflated (``ANALYTICS_002`` beyond, found
    before the rest is read: a bomb is refused as soon as it inflates past the limit)."""
    if not base64_encoded:
        # API Gateway hands text bodies over as text (a compressed one arrives base64-encoded, or
        # already inflated by the gateway): only the size is left to check.
        if len(body) > max_bytes or (len(body) * 4 > max_bytes and _utf8_length(body) > max_bytes):
            raise PayloadTooLarge(f"Payload over {max_bytes} bytes")
        return body
    if len(body) > (max_bytes + 2) // 3 * 4 + 4:
        raise PayloadTooLarge(f"Payload over {max_bytes} bytes")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid body encoding") from None
    coding = (content_encoding or "").strip().lower()
    if coding in ("gzip", "x-gzip") and raw.startswith(GZIP_MAGIC):
        raw = _inflate(raw, zlib.MAX_WBITS | 16, max_bytes)
    elif coding == "deflate" and raw:
        # HTTP's "deflate" is zlib-wrapped (RFC 1950); some clients send the raw stream.
        raw = _inflate(raw, zlib.MAX_WBITS if _is_zlib(raw) else -zlib.MAX_WBITS, max_bytes)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"Payload over {max_bytes} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Invalid event payload: body is not UTF-8") from None


def _is_zlib(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _inflate(data: bytes, wbits: int, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, max_bytes + 1)
    except zlib.error:
        raise BadRequest("Invalid body: not valid compressed data") from None
    if len(out) > max_bytes:
        raise PayloadTooLarge(f"Payload over {max_bytes} bytes once decompressed")
    if not inflater.eof:
        raise BadRequest("Invalid body: compressed data is truncated")
    return out


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


MAX_DIGITS = 38
MAX_EXPONENT = 125  # |x| < 10**126
MIN_EXPONENT = -130  # |x| >= 10**-130, or zero
_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")


class UnstorableNumber:
    """A number as the client wrote it, which DynamoDB cannot hold (or ``NaN``, ``Infinity``)."""

    __slots__ = ("reason", "text")

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason


def _constant(name: str) -> UnstorableNumber:
    return UnstorableNumber(name, f"{name} is not a number")


def _number(text: str) -> float | UnstorableNumber:
    problem = number_problem(text)
    return UnstorableNumber(text, problem) if problem else float(text)


def _integer(text: str) -> int | UnstorableNumber:
    problem = number_problem(text)
    return UnstorableNumber(text, problem) if problem else int(text)


def number_problem(text: str) -> str | None:
    """Why a number cannot be stored exactly, or None."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return "not a number"
    if not number.is_finite():
        return f"{text} is not a number"
    if number.is_zero():
        return None
    # Significant digits as written (normalize() would round them to the context's 28).
    digits = "".join(map(str, number.as_tuple().digits)).strip("0")
    if len(digits) > MAX_DIGITS:
        return f"more than {MAX_DIGITS} significant digits"
    if number.adjusted() > MAX_EXPONENT:
        return "larger than 9.99e125"
    if number.adjusted() < MIN_EXPONENT:
        return "smaller than 1e-130"
    return None


def has_unsafe_text(text: str) -> bool:
    """A lone surrogate or a NUL: storable, but never to be encoded again."""
    if text.isascii():
        return "\x00" in text
    return _UNSAFE_TEXT.search(text) is not None


def _printable(path: str) -> str:
    """A field path fit for an error message (a surrogate in a key would make the reply unsendable)."""
    return path.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\\u0000")


def check_hygiene(value: Any, what: str = "body") -> None:
    """Refuse what no read could ever encode again (400), and numbers no table can hold (422)."""
    unsafe: list[str] = []
    numbers: list[dict[str, str]] = []
    pending: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while pending:
        node, loc = pending.pop()
        if isinstance(node, str):
            if has_unsafe_text(node):
                unsafe.append(_printable(field_path(loc)))
        elif isinstance(node, UnstorableNumber):
            numbers.append({"field": field_path(loc), "message": f"cannot be stored exactly: {node.reason}"})
        elif isinstance(node, dict):
            for key, child in node.items():
                if has_unsafe_text(key):
                    unsafe.append(_printable(field_path(loc)))
                pending.append((child, (*loc, key)))
        elif isinstance(node, list):
            pending.extend((child, (*loc, index)) for index, child in enumerate(node))
    if unsafe:
        where = ", ".join(sorted(set(unsafe))[:5])
        raise BadRequest(f"Invalid {what}: a lone surrogate or NUL character in text ({where})")
    if numbers:
        raise ValidationFailed("A number cannot be stored", sorted(numbers, key=lambda d: d["field"]))


def parse_json(text: str | bytes, what: str = "body") -> Any:
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_number, parse_int=_integer)
    except RecursionError:
        raise BadRequest(f"Invalid {what}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Invalid {what}: malformed JSON ({exc})") from None
    check_hygiene(value, what)
    return value


def parse_json_object(text: str | bytes, what: str = "body") -> dict[str, Any]:
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid {what}: expected a JSON object")
    return value
