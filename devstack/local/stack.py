"""The local stack as a user starts it (``tracking-local run``), in a subprocess on free ports, and
an HTTP client for it: used by the end-to-end tests, the load run and the benchmarks."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.local.dynamodb import Database, find_jar, free_port
from devstack.local.template import ROOT


class StackError(RuntimeError):
    """The local stack could not be started."""


ADMIN_KEY = "e2e-admin-key-0123456789abcdef"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Stack:
    port: int
    state_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        source_ip: str = "127.0.0.1",
    ) -> Reply:
        """One HTTP request; ``source_ip`` (any 127.x address) stands for a distinct client."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=30, source_address=(source_ip, 0)
        )
        data = raw if raw is not None else (None if payload is None else json.dumps(payload).encode())
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            connection.request(method, path, body=data, headers=all_headers)
            response = connection.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def admin(self, method: str, path: str, payload: Any = None) -> Reply:
        return self.request(method, path, payload, headers={"x-api-key": ADMIN_KEY})

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "devstack.cli", "--state-dir", str(self.state_dir), *args],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        return done.stdout

    def database(self) -> Database:
        """The stack's DynamoDB, from the state file ``tracking-local run`` writes."""
        state: dict[str, Any] = json.loads((self.state_dir / "stack.json").read_text())
        return Database(state["dynamodb"], state["database"])

    def stored(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.cli("events", "--json", "--limit", "0").splitlines()]


def start_stack(
    state_dir: Path,
    *,
    rate_limit: int | None = None,
    in_memory: bool = True,
    admin_key: str = ADMIN_KEY,
    extra_env: dict[str, str] | None = None,
    own_process_group: bool = False,
) -> Stack:
    """Start ``tracking-local run`` and wait for /health; a port lost to another process between
    choosing and binding it means another try on another port. ``own_process_group`` lets
    :func:`crash_stack` kill it with everything it started, as a power cut would."""
    if find_jar() is None:
        raise StackError("DynamoDB Local is not installed: run `make deps`")
    env = {**os.environ, "TRACKING_ADMIN_KEY": admin_key, "LOCAL_LOG_LEVEL": "WARNING", **(extra_env or {})}
    env.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    if rate_limit is not None:
        env["RATE_LIMIT_PER_MINUTE"] = str(rate_limit)
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "stack.log"
    for _ in range(3):
        port = free_port()
        args = [
            sys.executable,
            "-m",
            "devstack.cli",
            "--state-dir",
            str(state_dir),
            "run",
            "--port",
            str(port),
        ]
        if in_memory:
            args.append("--in-memory")
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=own_process_group,
        )
        stack = Stack(port, state_dir, process, log)
        if _wait_healthy(stack):
            return stack
        if "Address already in use" not in log.read_text():
            break
    raise StackError(f"the local stack did not start:\n{log.read_text()[-3000:]}")


def _wait_healthy(stack: Stack, timeout_s: float = 90) -> bool:
    deadline = time.monotonic() + timeout_s
    while stack.process.poll() is None and time.monotonic() < deadline:
        try:
            if stack.request("GET", "/health").status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    if stack.process.poll() is None:
        stack.process.kill()
        stack.process.wait()
    return False


def stop_stack(stack: Stack) -> int:
    """Ctrl-C, as a person at the terminal would."""
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
        try:
            stack.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stack.process.kill()
            stack.process.wait()
    return stack.process.returncode


def crash_stack(stack: Stack) -> None:
    """SIGKILL to the stack and everything it started (DynamoDB Local, the function processes):
    no handler runs, nothing is flushed. The stack must run in its own process group."""
    os.killpg(stack.process.pid, signal.SIGKILL)
    stack.process.wait()


def eventually(check: Callable[[], Any], timeout_s: float = 20) -> Any:
    """Poll until ``check`` answers something truthy (the stream is asynchronous); its last answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)
