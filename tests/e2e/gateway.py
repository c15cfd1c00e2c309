"""A transparent gateway for end-to-end tests: between a client and the local stack, it forwards every
request unchanged (CORS preflights included) and relays the stack's answer, and it can answer calls
itself exactly as API Gateway does when its throttle, its size limit or an integration fails: the
template's own gateway responses, rendered. It remembers what it saw, headers included."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devstack.local.stack import Stack
from devstack.local.template import Template

# Which of the template's gateway responses answers a status the gateway gives itself.
GATEWAY_RESPONSES = {400: "REQUEST_TOO_LARGE", 429: "THROTTLED", 503: "DEFAULT_5XX"}
CONTEXT = {"$context.httpMethod": "POST", "$context.error.messageString": '"Forbidden"'}
DROPPED = ("content-length", "connection", "transfer-encoding", "date", "server")
TEMPLATE = Template.load()


class Dropped(Exception):
    """Raised by a gateway's ``forward`` to drop the client's connection without an answer."""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class Gateway:
    """Forwards every request to the stack unchanged and relays its answer; ``fail`` makes it answer
    the next POSTs to a path itself (400 too large, 429 throttled, 503 failed) with the template's
    gateway response, as API Gateway would."""

    stack: Stack
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    failing: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, path: str, *statuses: int) -> None:
        with self.lock:
            self.failing[path] = list(statuses)

    def posts(self, path: str, since: int = 0) -> list[Seen]:
        """The POSTs to ``path`` it relayed or answered, from the ``since``-th request on."""
        return [s for s in self.seen[since:] if s.method == "POST" and urlsplit(s.path).path == path]

    def preflights(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "OPTIONS"]

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        with self.lock:
            pending = self.failing.get(urlsplit(path).path) if method == "POST" else None
            status = pending.pop(0) if pending else None
        if status is not None:
            reply = TEMPLATE.gateway_response(GATEWAY_RESPONSES[status], CONTEXT)
            headers_out = [("Content-Type", "application/json"), *reply.headers.items()]
            return reply.status, headers_out, reply.body.encode()
        connection = http.client.HTTPConnection("127.0.0.1", self.stack.port, timeout=30)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def _serve(gateway: Gateway) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
            try:
                status, answer_headers, payload = gateway.forward(self.command, self.path, headers, body)
            except Dropped:  # the connection dropped: no answer at all
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            gateway.seen.append(
                Seen(self.command, self.path, {k.lower(): v for k, v in headers.items()}, status)
            )
            self.send_response(status)
            for name, value in answer_headers:
                if name.lower() not in DROPPED:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_OPTIONS = _relay

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    gateway.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def running(gateway: Gateway) -> Iterator[Gateway]:
    server = _serve(gateway)
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()
