"""Runs the template's handlers the way Lambda does.

On AWS each container is its own process: it imports the handler once (its cold start), serves one
invocation at a time, and shares no memory with the others. Powertools relies on that (it keeps the
current event in class attributes), so the local stack runs each container as a worker process
(:class:`ProcessPool`). Tests that need the function in their own process (moto, fault hooks) use
:class:`FunctionPool`, whose containers are modules imported in-process.
"""

from __future__ import annotations

import importlib.util
import itertools
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from devstack.local.template import Function

Handler = Callable[[dict[str, Any], Any], Any]
_serial = itertools.count(1)


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Invoker(Protocol):
    def invoke(self, event: dict[str, Any]) -> Any: ...


class FunctionError(Exception):
    """The handler raised (what Lambda reports as an unhandled function error)."""


def load_handler(function: Function) -> Handler:
    """Import the function's module under a fresh name: a new container with its own globals."""
    path = function.code_dir / f"{function.module}.py"
    name = f"_lambda_{function.logical_id}_{next(_serial)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    handler: Handler = getattr(module, function.handler)
    return handler


def _context(function: Function) -> LambdaContext:
    return LambdaContext(function.logical_id, function.memory_mb, function.timeout_s)


class _Pool:
    """Up to ``size`` warm containers; an invocation waits for a free one."""

    def __init__(self, function: Function, size: int, start: Callable[[], Any]) -> None:
        self.function = function
        self._size = size
        self._start = start
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _acquire(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = len(self._all) < self._size
            if grow:
                self._all.append(None)  # a place, taken before the slow start
        if not grow:
            return self._idle.get()
        try:
            container = self._start()
        except BaseException:
            with self._lock:
                self._all.remove(None)
            raise
        with self._lock:
            self._all[self._all.index(None)] = container
        return container

    def warm(self) -> None:
        self._idle.put(self._acquire())


class FunctionPool(_Pool):
    """Containers as in-process modules (for tests: moto and botocore hooks live in this process)."""

    def __init__(self, function: Function, size: int = 4) -> None:
        super().__init__(function, size, lambda: load_handler(function))

    def invoke(self, event: dict[str, Any]) -> Any:
        handler = self._acquire()
        try:
            return handler(event, _context(self.function))
        finally:
            self._idle.put(handler)


def _serve(connection: Connection, function: Function, environment: Mapping[str, str]) -> None:
    """A container's process: import the handler once, then answer invocations one at a time, until
    the stack closes its pipe. Ctrl-C or a signal to the whole process group is the stack's to handle:
    a container never dies in the middle of an invocation because of it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.update(environment)
    handler = load_handler(function)
    connection.send(("ready", None))
    while True:
        try:
            event = connection.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            connection.send(("ok", handler(event, _context(function))))
        except BaseException as exc:  # the invocation failed, the container lives on
            connection.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


class ProcessContainer:
    def __init__(self, function: Function, environment: Mapping[str, str]) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(child, function, dict(environment)),
            name=f"lambda-{function.logical_id}",
            daemon=True,
        )
        self.process.start()
        child.close()
        status, detail = self._connection.recv()
        if status != "ready":
            raise FunctionError(str(detail))

    def invoke(self, event: dict[str, Any]) -> Any:
        self._connection.send(event)
        status, payload = self._connection.recv()
        if status == "error":
            raise FunctionError(payload)
        return payload

    def close(self) -> None:
        """Ask the container to end: it reads the end of its pipe once its invocation (if any) is done."""
        self._connection.close()

    def end(self, deadline: float) -> None:
        """Wait for it until ``deadline`` (monotonic), then kill it."""
        self.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=1)


class ProcessPool(_Pool):
    """Containers as worker processes, each with only its own function's environment."""

    def __init__(self, function: Function, environment: Mapping[str, str], size: int = 4) -> None:
        super().__init__(function, size, lambda: ProcessContainer(function, environment))

    def invoke(self, event: dict[str, Any]) -> Any:
        container: ProcessContainer = self._acquire()
        try:
            return container.invoke(event)
        finally:
            self._idle.put(container)

    def stop(self, deadline: float) -> None:
        with self._lock:
            containers = [c for c in self._all if c is not None]
        for container in containers:
            container.close()
        for container in containers:
            container.end(deadline)


def function_environment(function: Function, local: Mapping[str, str]) -> dict[str, str]:
    """What a function's container sees: its template environment, the process's values for the
    same names (``RATE_LIMIT_PER_MINUTE=0 make run``), and the local endpoint and credentials."""
    environment = dict(os.environ)
    for name, value in function.environment.items():
        environment[name] = os.environ.get(name, value) if name in _OVERRIDABLE else value
    environment.update(local)
    return environment


_OVERRIDABLE = frozenset(
    {
        "LOG_LEVEL",
        "RATE_LIMIT_PER_MINUTE",
        "CONFIG_CACHE_SECONDS",
        "RETENTION_DAYS",
        "DELIVERY_MAX_AGE_SECONDS",
    }
)
