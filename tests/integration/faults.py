"""Fault injection on the functions' DynamoDB client through botocore's own event hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError

from tracking.storage.dynamo import client


@contextmanager
def dynamodb_fails(
    operation: str,
    code: str = "ThrottlingException",
    *,
    after: int = 0,
    when: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[dict[str, int]]:
    """Every ``operation`` call (whose parameters satisfy ``when``) after the first ``after`` fails
    with ``code``, as it does once botocore's own retries gave up."""
    calls = {"seen": 0, "failed": 0}

    def fail(params: dict[str, Any], **_: Any) -> None:
        if when is not None and not when(params):
            return
        calls["seen"] += 1
        if calls["seen"] > after:
            calls["failed"] += 1
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)

    event = f"before-parameter-build.dynamodb.{operation}"
    client().meta.events.register(event, fail)
    try:
        yield calls
    finally:
        client().meta.events.unregister(event, fail)
