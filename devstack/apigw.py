"""API Gateway REST emulation: each HTTP request becomes the proxy event the handler gets on AWS
(routes from ``template.yaml``, ``sourceIp`` from the socket, multi-value headers and query strings),
and the handler's answer becomes the HTTP response."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devstack.lambdas import Invoker
from devstack.template import Route

logger = logging.getLogger("devstack.api")

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


def match(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        found = route.pattern.match(path)
        if found:
            return route, {k: unquote(v) for k, v in found.groupdict().items()}
    return None


def proxy_event(
    *,
    method: str,
    raw_path: str,
    query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    route: Route,
    path_parameters: Mapping[str, str],
    stage: str,
) -> dict[str, Any]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    q_single: dict[str, str] = {}
    q_multi: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        q_single[name] = value
        q_multi.setdefault(name, []).append(value)
    text: str | None
    encoded = False
    if not body:
        text = None
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    return {
        "resource": route.path,
        "path": raw_path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": q_single or None,
        "multiValueQueryStringParameters": q_multi or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": method,
            "path": f"/{stage}{raw_path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "protocol": "HTTP/1.1",
            "domainName": single.get("Host", "127.0.0.1"),
            "identity": {
                "sourceIp": source_ip,
                "userAgent": single.get("User-Agent"),
                "apiKey": None,
                "cognitoIdentityId": None,
                "user": None,
            },
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def not_found_body(method: str, path: str) -> bytes:
    """What the deployed API answers for an unknown route (its gateway response is set the same)."""
    error = {"code": "NOT_FOUND", "message": f"No route {method} {path}"}
    return json.dumps({"success": False, "error": error}).encode()


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        routes: list[Route],
        pools: Mapping[str, Invoker],
        stage: str = "local",
    ) -> None:
        super().__init__(address, _Handler)
        self.routes = routes
        self.pools = pools
        self.stage = stage


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.client_address[0], *args)

    def _serve(self) -> None:
        started = time.perf_counter()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"Content-Type": "application/json"}, b'{"message":"Request Too Long"}')
            return
        body = self.rfile.read(length) if length else b""
        found = match(self.server.routes, self.command, parts.path)
        if found is None:
            self._reply(404, {"Content-Type": "application/json"}, not_found_body(self.command, parts.path))
            return
        route, params = found
        event = proxy_event(
            method=self.command,
            raw_path=parts.path,
            query=parts.query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            route=route,
            path_parameters=params,
            stage=self.server.stage,
        )
        try:
            result = self.server.pools[route.function].invoke(event)
        except Exception:
            logger.exception("handler of %s failed", route.function)
            self._reply(502, {"Content-Type": "application/json"}, b'{"message":"Internal server error"}')
            return
        status, headers, payload = _http_response(result)
        self._reply(status, headers, payload)
        logger.info(
            "%s %s -> %s (%.1f ms)", self.command, parts.path, status, (time.perf_counter() - started) * 1000
        )

    def _reply(self, status: int, headers: Mapping[str, str | list[str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            for item in value if isinstance(value, list) else [value]:
                self.send_header(name, str(item))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve


def _http_response(result: Any) -> tuple[int, dict[str, str | list[str]], bytes]:
    """A Lambda proxy integration result as API Gateway turns it into HTTP (malformed: 502)."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        return 502, {"Content-Type": "application/json"}, b'{"message":"Internal server error"}'
    headers: dict[str, str | list[str]] = dict(result.get("headers") or {})
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = list(values)
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    return int(result["statusCode"]), headers, payload
