"""Client payloads, read the one way every route reads them: the body decoded (base64, then
``Content-Encoding: gzip`` or ``deflate`` inflated with a hard cap), its size checked, then parsed
strictly, and its hygiene checked wherever it is nested (so no dialect, and no later read of what
was stored, can meet what this refuses):

- malformed JSON, or nesting that would blow the stack: 400 ``ANALYTICS_001``;
- a string (a key or a value, at any depth) holding a lone surrogate or a NUL: 400 ``ANALYTICS_001``
  (it could be stored but never encoded again, by a read, an export or the page);
- a number DynamoDB cannot hold exactly (beyond 38 significant digits, magnitude above 9.99e125,
  non-zero below 1e-130), ``NaN`` or ``Infinity``: 422 ``VALIDATION`` naming each field. Ingest
  parses with ``judge_numbers=False``: such a number stays in place as an :class:`UnstorableNumber`
  and each dialect judges it with the call that holds it (``check_numbers``, ``number_details``), so
  one bad number refuses its own call, never its batch, and is recorded once the plugin is known.
  Numeric strings that become numbers (a price sent as text) follow the same rule
  (``models.canonical.number_problem``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from typing import Any

from tracking.api_errors import BadRequest, PayloadTooLarge, ValidationFailed, field_path
from tracking.models.canonical import number_problem

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


_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")


class UnstorableNumber:
    """A number as the client wrote it, which DynamoDB cannot hold (or ``NaN``, ``Infinity``): kept
    in place of the number so that each call of a batch is judged on its own (``number_details``)."""

    __slots__ = ("reason", "text")

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason

    def __str__(self) -> str:  # how a recorded rejection's payload shows it
        return self.text


def _constant(name: str) -> UnstorableNumber:
    return UnstorableNumber(name, f"{name} is not a number")


def _number(text: str) -> float | UnstorableNumber:
    problem = number_problem(text)
    return UnstorableNumber(text, problem) if problem else float(text)


def _integer(text: str) -> int | UnstorableNumber:
    problem = number_problem(text)
    return UnstorableNumber(text, problem) if problem else int(text)


def has_unsafe_text(text: str) -> bool:
    """A lone surrogate or a NUL: storable, but never to be encoded again."""
    if text.isascii():
        return "\x00" in text
    return _UNSAFE_TEXT.search(text) is not None


def _printable(path: str) -> str:
    """A field path fit for an error message (a surrogate in a key would make the reply unsendable)."""
    return path.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\\u0000")


def _walk(value: Any, loc: tuple[int | str, ...] = ()) -> Any:
    """Every (node, location) of a parsed JSON value, keys' locations included (as their parent's)."""
    pending: list[tuple[Any, tuple[int | str, ...]]] = [(value, loc)]
    while pending:
        node, where = pending.pop()
        yield node, where
        if isinstance(node, dict):
            for key, child in node.items():
                yield key, where
                pending.append((child, (*where, key)))
        elif isinstance(node, list):
            pending.extend((child, (*where, index)) for index, child in enumerate(node))


def check_text(value: Any, what: str = "body") -> None:
    """Refuse what no read could ever encode again: a lone surrogate or a NUL anywhere (400)."""
    unsafe = {
        _printable(field_path(loc))
        for node, loc in _walk(value)
        if isinstance(node, str) and has_unsafe_text(node)
    }
    if unsafe:
        where = ", ".join(sorted(unsafe)[:5])
        raise BadRequest(f"Invalid {what}: a lone surrogate or NUL character in text ({where})")


def number_details(value: Any, prefix: str = "") -> list[dict[str, str]]:
    """The fields of ``value`` holding a number no table can hold, as the contract's ``details``."""
    found = [
        {"field": field_path(loc, prefix), "message": f"cannot be stored exactly: {node.reason}"}
        for node, loc in _walk(value)
        if isinstance(node, UnstorableNumber)
    ]
    return sorted(found, key=lambda detail: detail["field"])


def check_numbers(value: Any, prefix: str = "") -> None:
    """422 naming every field of ``value`` that holds a number no table can hold."""
    details = number_details(value, prefix)
    if details:
        raise ValidationFailed("A number cannot be stored", details)


def check_hygiene(value: Any, what: str = "body") -> None:
    """Refuse what no read could ever encode again (400), and numbers no table can hold (422)."""
    check_text(value, what)
    check_numbers(value)


def parse_json(text: str | bytes, what: str = "body", *, judge_numbers: bool = True) -> Any:
    """``judge_numbers=False`` leaves each unstorable number in place as an :class:`UnstorableNumber`
    for the caller to judge call by call (ingest: one bad number refuses its own call, and is recorded
    for the plugin once the plugin is known)."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_number, parse_int=_integer)
    except RecursionError:
        raise BadRequest(f"Invalid {what}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Invalid {what}: malformed JSON ({exc})") from None
    if judge_numbers:
        check_hygiene(value, what)
    else:
        check_text(value, what)
    return value


def parse_json_object(text: str | bytes, what: str = "body", *, judge_numbers: bool = True) -> dict[str, Any]:
    value = parse_json(text, what, judge_numbers=judge_numbers)
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid {what}: expected a JSON object")
    return value
