"""The local stack as users start it (``tracking-local run``), in a subprocess on free ports,
with DynamoDB Local; tests talk HTTP to it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from devstack.local.stack import ADMIN_KEY, Reply, Stack, StackError, eventually, start_stack, stop_stack
from tests.conftest import ROOT

__all__ = ["ADMIN_KEY", "Reply", "Stack", "eventually", "run_demo", "start_stack", "stop_stack"]


def run_demo(stack: Stack) -> subprocess.CompletedProcess[str]:
    """``make demo`` against the running stack (as its CLI runs it), with the stack's admin key."""
    return subprocess.run(
        [sys.executable, "-m", "devstack.cli", "--state-dir", str(stack.state_dir), "demo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TRACKING_ADMIN_KEY": ADMIN_KEY},
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        running = start_stack(tmp_path_factory.mktemp("stack"))
    except StackError as exc:
        pytest.fail(str(exc))
    yield running
    stop_stack(running)
