"""The local API server as clients (and attackers) meet it: many connections at once, malformed
framing, chunked bodies, odd header bytes; and the stack stopping on one signal."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack.local.stack import Stack, StackError, eventually, start_stack, stop_stack

pytestmark = pytest.mark.e2e

WIDGET = {"event": "visitor", "token": "user_abc123def456", "data": {"chatbot_id": "server-bot"}}


def raw_exchange(stack: Stack, request: bytes, timeout_s: float = 10) -> bytes:
    """Send bytes as they are, read the answer until the server closes or answers in full."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout_s) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def alive_in_group(group: int) -> list[str]:
    """Processes of the process group that still run, from /proc."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            state, pgid = fields[0], int(fields[2])
            if pgid == group and state not in ("Z", "X"):
                alive.append(stat.parent.name)
    return alive


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_many_clients_at_once_are_all_served(stack: Stack) -> None:
    # Given 200 requests from 64 clients at once (the old server's backlog was 5)
    def send(n: int) -> int:
        return stack.request(
            "POST", "/api/analytics/track", WIDGET, source_ip=f"127.0.{n % 200}.{n % 250 + 1}"
        ).status

    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(send, range(200)))
    # Then every one is answered (no reset, no error)
    assert statuses == [200] * 200


def test_a_negative_content_length_is_refused_without_hanging(stack: Stack) -> None:
    answer = raw_exchange(
        stack, b"POST /api/analytics/track HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}", timeout_s=10
    )
    assert status_of(answer) in (400, 411, 413)


def test_a_chunked_body_is_read(stack: Stack) -> None:
    body = json.dumps({**WIDGET, "token": "user_chunked_0001"}).encode()
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:20], body[20:]))
    answer = raw_exchange(
        stack,
        b"POST /api/analytics/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert status_of(answer) == 200, answer
    assert eventually(lambda: any(e["user_id"] == "user_chunked_0001" for e in stack.stored()))


def test_header_bytes_outside_latin_1_do_not_drop_the_connection(stack: Stack) -> None:
    body = json.dumps(WIDGET).encode()
    answer = raw_exchange(
        stack,
        b"POST /api/analytics/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + "User-Agent: caf\u00e9 \U0001f600\r\n".encode()
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body,
    )
    assert status_of(answer) == 200, answer


def test_one_sigterm_to_the_process_group_stops_everything_within_10_s(tmp_path: Path) -> None:
    # Given a stack in its own process group, as a shell would start it
    try:
        running = start_stack(tmp_path / "stack", own_process_group=True)
    except StackError as exc:
        pytest.fail(str(exc))
    group = os.getpgid(running.process.pid)
    try:
        assert running.request("GET", "/health").status == 200
        # When the whole group gets one SIGTERM (what a terminal or a supervisor sends)
        os.killpg(group, signal.SIGTERM)
        started = time.monotonic()
        health: list[int] = []
        while running.process.poll() is None and time.monotonic() - started < 15:
            with contextlib.suppress(OSError):  # refused once the server is gone
                health.append(running.request("GET", "/health").status)
            time.sleep(0.1)
        # Then the stack is gone within 10 s; meanwhile /health answered 503 once it knew (a request
        # already under way may still be a 200), and never an error of a function that was killed
        assert running.process.poll() is not None
        assert time.monotonic() - started < 10
        stopping = health[next((i for i, s in enumerate(health) if s != 200), len(health)) :]
        assert set(stopping) <= {503}
        assert health.count(200) <= 1
        # with nothing it started left running (an exited process not yet reaped does not count)
        time.sleep(0.5)
        assert alive_in_group(group) == []
    finally:
        if running.process.poll() is None:
            os.killpg(group, signal.SIGKILL)
        stop_stack(running)
