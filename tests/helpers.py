"""Building API Gateway REST proxy events the way the local stack and AWS do (the benchmarks' builder
too), and reading the contract's error shape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devstack.builders import api_event

__all__ = ["api_event", "assert_contract_error"]


def assert_contract_error(body: dict[str, Any], codes: Iterable[str]) -> None:
    """``body`` is the contract's error shape, with one of ``codes``."""
    assert body["success"] is False, body
    assert body["error"]["code"] in set(codes), body
    assert isinstance(body["error"]["message"], str), body
    for detail in body["error"].get("details", []):
        assert set(detail) == {"field", "message"}, detail
