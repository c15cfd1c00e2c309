"""Client payloads, read the one way every route reads them: the body decoded (base64, then
``Content-Encoding: gzip`` or ``deflate`` inflated with a hard cap), its size checked, then parsed
strictly: anything Python's ``json`` would accept but JSON does not (``NaN``, ``Infinity``) and
anything that would blow the stack is a 400, never a 500."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from tracking.errors import BadRequest, PayloadTooLarge

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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str | bytes, what: str = "body") -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest(f"Invalid {what}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Invalid {what}: malformed JSON ({exc})") from None


def parse_json_object(text: str | bytes, what: str = "body") -> dict[str, Any]:
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid {what}: expected a JSON object")
    return value
