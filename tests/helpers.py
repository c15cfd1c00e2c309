"""Building API Gateway REST proxy events the way the local stack and AWS do."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from devstack.apigw import match, proxy_event
from devstack.template import Template

_ROUTES = Template.load().routes()


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    ip: str = "198.51.100.7",
    raw: bytes | None = None,
) -> dict[str, Any]:
    found = match(_ROUTES, method, path)
    assert found is not None, f"no route {method} {path} in template.yaml"
    route, params = found
    payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return proxy_event(
        method=method,
        raw_path=path,
        query=urlencode(query or {}),
        headers=list(all_headers.items()),
        body=payload,
        source_ip=ip,
        route=route,
        path_parameters=params,
        stage="test",
    )


def assert_contract_error(body: dict[str, Any], codes: Iterable[str]) -> None:
    """``body`` is the contract's error shape, with one of ``codes``."""
    assert body["success"] is False, body
    assert body["error"]["code"] in set(codes), body
    assert isinstance(body["error"]["message"], str), body
    for detail in body["error"].get("details", []):
        assert set(detail) == {"field", "message"}, detail
