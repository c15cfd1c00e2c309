"""Runs the template's handlers in-process the way Lambda does: each "container" imports the handler
module once (its cold start) and serves one invocation at a time; a pool gives concurrency."""

from __future__ import annotations

import importlib.util
import itertools
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devstack.template import Function

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


def apply_environment(functions: Mapping[str, Function], extra: Mapping[str, str]) -> None:
    """One process hosts every function, so their environments are merged into ``os.environ``
    (the template gives each name one value); ``extra`` (local endpoint, credentials) wins."""
    for function in functions.values():
        for name, value in function.environment.items():
            os.environ.setdefault(name, value)
    os.environ.update(extra)


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


class FunctionPool:
    """Up to ``size`` warm containers of one function; an invocation waits for a free one."""

    def __init__(self, function: Function, size: int = 4) -> None:
        self.function = function
        self._size = size
        self._idle: queue.SimpleQueue[Handler] = queue.SimpleQueue()
        self._created = 0
        self._lock = threading.Lock()

    def _acquire(self) -> Handler:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            grow = self._created < self._size
            if grow:
                self._created += 1
        if grow:
            try:
                return load_handler(self.function)
            except BaseException:
                with self._lock:
                    self._created -= 1
                raise
        return self._idle.get()

    def invoke(self, event: dict[str, Any]) -> Any:
        handler = self._acquire()
        try:
            context = LambdaContext(
                function_name=self.function.logical_id,
                memory_limit_in_mb=self.function.memory_mb,
                timeout_s=self.function.timeout_s,
            )
            return handler(event, context)
        finally:
            self._idle.put(handler)
