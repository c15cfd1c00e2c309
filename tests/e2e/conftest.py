"""The local stack as users start it (``tracking-local run``), in a subprocess on free ports,
with DynamoDB Local; tests talk HTTP to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import ADMIN_KEY, Reply, Stack, StackError, eventually, start_stack, stop_stack

__all__ = ["ADMIN_KEY", "Reply", "Stack", "eventually", "start_stack", "stop_stack"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    try:
        running = start_stack(tmp_path_factory.mktemp("stack"))
    except StackError as exc:
        pytest.fail(str(exc))
    yield running
    stop_stack(running)
