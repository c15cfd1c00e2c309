"""Reading a client's body: base64, gzip and deflate inflated under a hard cap, then its size."""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc
import zlib

import pytest

from tracking.api_errors import BadRequest, PayloadTooLarge
from tracking.payloads import body_text

LIMIT = 50_000
PAYLOAD = json.dumps({"event": "visitor", "token": "user_abc123def456", "data": {"emoji": "😍"}})


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


def read(data: bytes, coding: str | None, limit: int = LIMIT) -> str:
    return body_text(encoded(data), base64_encoded=True, content_encoding=coding, max_bytes=limit)


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as HTTP defines deflate
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # the raw stream some clients send
    ],
)
def test_compressed_bodies_are_inflated(coding: str, compress: object) -> None:
    assert read(compress(PAYLOAD.encode()), coding) == PAYLOAD  # type: ignore[operator]


def test_a_bomb_is_refused_at_the_limit_with_memory_bounded() -> None:
    # Given 1 MB of zeros, gzipped to about a kilobyte
    bomb = gzip.compress(b"0" * 1_000_000)
    assert len(bomb) < 2_000
    tracemalloc.start()
    try:
        # When it is read under the 50,000-byte limit
        with pytest.raises(PayloadTooLarge):
            read(bomb, "gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then inflating stopped at the limit: nothing near a megabyte was ever held
    assert peak < 300_000


def test_the_limit_applies_to_the_inflated_size() -> None:
    body = json.dumps({"blob": "x" * 60_000})
    with pytest.raises(PayloadTooLarge):
        read(gzip.compress(body.encode()), "gzip")
    assert read(gzip.compress(body.encode()), "gzip", limit=70_000) == body


def test_truncated_or_corrupt_compressed_data_is_a_bad_request() -> None:
    whole = gzip.compress(PAYLOAD.encode())
    with pytest.raises(BadRequest):
        read(whole[: len(whole) // 2], "gzip")
    with pytest.raises(BadRequest):
        read(b"\x1f\x8b" + b"\x00" * 30, "gzip")


def test_a_body_the_gateway_already_inflated_is_read_as_is() -> None:
    assert read(PAYLOAD.encode(), "gzip") == PAYLOAD
    assert body_text(PAYLOAD, base64_encoded=False, content_encoding="gzip", max_bytes=LIMIT) == PAYLOAD


def test_compressed_bytes_without_the_header_are_not_text() -> None:
    with pytest.raises(BadRequest):
        read(gzip.compress(PAYLOAD.encode()), None)
