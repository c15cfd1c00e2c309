"""One POST to a destination, and what its answer means: delivered (2xx), to retry (408, 429, 5xx, a
refused or dropped connection, no answer within the timeout) or failed for good (any other status).

The connection goes to the address that was checked (``addresses.Target``), naming the host in the
``Host`` header and in TLS (SNI and certificate check); it is kept and reused for the next request to
the same origin. Redirects are not followed (a 3xx is a failure: its target was never checked); at
most ``BODY_CAP`` bytes of an answer are read, for the failure's message."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Literal

from tracking.destinations.addresses import Target

TIMEOUT_S = 10.0
BODY_CAP = 1024
ERROR_TEXT_MAX = 300
RETRIED_STATUSES = frozenset({408, 429})

Verdict = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    status: int | None  # the HTTP status, None when no answer came
    error: str | None = None  # why it was not delivered, for the failures list
    retry_after_s: float | None = None  # a 429's or 503's Retry-After, in seconds


def verdict_of(status: int) -> Verdict:
    if 200 <= status < 300:
        return "delivered"
    if status in RETRIED_STATUSES or status >= 500:
        return "retry"
    return "failed"


class _PinnedHttps(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the name for SNI and the certificate."""

    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class _PinnedHttp(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class Sender:
    """POSTs over kept connections, one per origin and thread (each destination of a batch is sent
    from a thread of its own)."""

    def __init__(self, timeout_s: float = TIMEOUT_S, tls: ssl.SSLContext | None = None) -> None:
        self._timeout = timeout_s
        self._local = threading.local()
        self._tls = tls or ssl.create_default_context()

    @property
    def _connections(self) -> dict[tuple[str, str, int, str], http.client.HTTPConnection]:
        kept: dict[tuple[str, str, int, str], http.client.HTTPConnection] | None = getattr(
            self._local, "connections", None
        )
        if kept is None:
            kept = self._local.connections = {}
        return kept

    def post(self, target: Target, body: bytes, headers: dict[str, str]) -> Outcome:
        for attempt in (1, 2):
            connection = self._connection(target)
            fresh = connection.sock is None
            try:
                connection.request("POST", target.path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read(BODY_CAP)
                if response.will_close or response.length is None or response.length > 0:
                    self._drop(target)  # unread rest, or the server closes: do not reuse
            except TimeoutError:
                self._drop(target)
                return Outcome("retry", None, f"no answer within {self._timeout:g} s")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop(target)
                if attempt == 1 and not fresh:
                    continue  # a kept connection the server had closed: once more on a new one
                return Outcome("retry", None, f"the connection was dropped ({type(exc).__name__})")
            except ssl.SSLError as exc:
                self._drop(target)
                return Outcome("retry", None, f"TLS failed ({exc.reason or type(exc).__name__})")
            except (OSError, http.client.HTTPException) as exc:
                self._drop(target)
                return Outcome("retry", None, f"the connection failed ({type(exc).__name__})")
            return _outcome(response.status, answer, response.getheader("Retry-After"))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _connection(self, target: Target) -> http.client.HTTPConnection:
        found = self._connections.get(target.origin)
        if found is None:
            found = (
                _PinnedHttps(target, self._timeout, self._tls)
                if target.scheme == "https"
                else _PinnedHttp(target, self._timeout)
            )
            self._connections[target.origin] = found
        return found

    def _drop(self, target: Target) -> None:
        found = self._connections.pop(target.origin, None)
        if found is not None:
            found.close()


def _outcome(status: int, answer: bytes, retry_after: str | None) -> Outcome:
    verdict = verdict_of(status)
    if verdict == "delivered":
        return Outcome(verdict, status)
    if 300 <= status < 400:
        return Outcome(verdict, status, f"HTTP {status}: redirects are not followed")
    text = answer.decode("utf-8", "replace").strip()[:ERROR_TEXT_MAX]
    error = f"HTTP {status}" + (f": {text}" if text else "")
    return Outcome(verdict, status, error, _seconds(retry_after) if verdict == "retry" else None)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: the backoff decides
    return seconds if 0 <= seconds <= 86_400 else None
