"""API Gateway REST emulation: each HTTP request becomes the proxy event the handler gets on AWS
(routes from ``template.yaml``, ``sourceIp`` from the socket, multi-value headers and query strings),
and the handler's answer becomes the HTTP response. Served by werkzeug."""

from __future__ import annotations

import base64
import gzip
import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from devstack.local.lambdas import Invoker
from devstack.local.template import Route

logger = logging.getLogger("devstack.api")

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
JSON = {"Content-Type": "application/json"}


def gateway_error(code: str, message: str) -> bytes:
    """An answer the gateway gives itself, shaped as the template's gateway responses: the contract's
    error, with Segment's top-level ``code`` and ``message`` (its libraries read those)."""
    error = {"code": code, "message": message}
    return json.dumps({"success": False, **error, "error": error}).encode()


STOPPING_BODY = gateway_error("UNAVAILABLE", "The local stack is stopping")


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
    return gateway_error("NOT_FOUND", f"No route {method} {path}")


class ApiServer:
    """The local API: a well-kept WSGI server (werkzeug's, which ``sam local start-api`` uses too)
    with a deep listen backlog, a thread per connection, chunked bodies and keep-alive, turning each
    request into the proxy event API Gateway would send. While the stack stops, it answers 503."""

    def __init__(
        self,
        address: tuple[str, int],
        routes: list[Route],
        pools: Mapping[str, Invoker],
        stage: str = "local",
        minimum_compression: int | None = None,
    ) -> None:
        self.routes = routes
        self.pools = pools
        self.stage = stage
        self.minimum_compression = minimum_compression
        self.stopping = False
        self._server = make_server(address[0], address[1], self._app, threaded=True, request_handler=_Quiet)
        self.server_address = self._server.server_address

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self._server.shutdown()

    def server_close(self) -> None:
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY
        try:
            status, headers, payload = self._answer(request)
        except RequestEntityTooLarge:
            # As the template's REQUEST_TOO_LARGE gateway response answers it.
            status, headers, payload = 400, JSON, gateway_error("ANALYTICS_002", "Payload too large")
        response = Response(payload, status=status)
        response.headers.clear()
        for name, value in headers.items():
            for item in value if isinstance(value, list) else [value]:
                response.headers.add(name, str(item))
        return response(environ, start_response)

    def _answer(self, request: Request) -> tuple[int, Mapping[str, str | list[str]], bytes]:
        started = time.perf_counter()
        raw_target = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI") or request.full_path
        parts = urlsplit(raw_target)
        if self.stopping:
            return 503, JSON, STOPPING_BODY
        body = request.get_data(cache=False)
        found = match(self.routes, request.method, parts.path)
        if found is None:
            return 404, JSON, not_found_body(request.method, parts.path)
        route, params = found
        event = proxy_event(
            method=request.method,
            raw_path=parts.path,
            query=parts.query,
            headers=list(request.headers.items()),
            body=body,
            source_ip=request.remote_addr or "127.0.0.1",
            route=route,
            path_parameters=params,
            stage=self.stage,
        )
        try:
            result = self.pools[route.function].invoke(event)
        except Exception:
            if self.stopping:  # its container was stopped under it: the stack is going, not broken
                return 503, JSON, STOPPING_BODY
            logger.exception("handler of %s failed", route.function)
            return 502, JSON, b'{"message":"Internal server error"}'
        status, headers, payload = _http_response(result)
        headers, payload = compressed(
            headers, payload, request.headers.get("Accept-Encoding"), self.minimum_compression
        )
        logger.info(
            "%s %s -> %s (%.1f ms)",
            request.method,
            parts.path,
            status,
            (time.perf_counter() - started) * 1000,
        )
        return status, headers, payload


def compressed(
    headers: dict[str, str | list[str]], payload: bytes, accepted: str | None, minimum: int | None
) -> tuple[dict[str, str | list[str]], bytes]:
    """An answer as API Gateway sends it with ``MinimumCompressionSize``: gzipped when it is that large
    or larger and the client accepts gzip (and the function did not encode it itself)."""
    wanted = accepted is not None and "gzip" in {part.split(";")[0].strip() for part in accepted.split(",")}
    encoded = any(name.lower() == "content-encoding" for name in headers)
    if minimum is None or len(payload) < minimum or not wanted or encoded:
        return headers, payload
    return {**headers, "Content-Encoding": "gzip"}, gzip.compress(payload)


class _Quiet(WSGIRequestHandler):
    """Request lines at DEBUG (the API logs its own), not werkzeug's INFO line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s %s", self.address_string(), self.requestline, code)


def _http_response(result: Any) -> tuple[int, dict[str, str | list[str]], bytes]:
    """A Lambda proxy integration result as API Gateway turns it into HTTP (malformed: 502)."""
    if not isinstance(result, Mapping) or "statusCode" not in result:
        return 502, {"Content-Type": "application/json"}, b'{"message":"Internal server error"}'
    headers: dict[str, str | list[str]] = dict(result.get("headers") or {})
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name] = list(values)
    body = result.get("body") or ""
    text = str(body)
    payload = (
        base64.b64decode(text) if result.get("isBase64Encoded") else text.encode("utf-8", errors="replace")
    )
    return int(result["statusCode"]), headers, payload
