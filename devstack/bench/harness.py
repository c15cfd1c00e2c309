"""Each function run in this process as a warm container of its own on DynamoDB Local, with its
environment from ``template.yaml``."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import Any

from devstack.local import dynamodb
from devstack.local.lambdas import LambdaContext, function_environment, load_handler
from devstack.local.template import Template
from tracking.settings import get_settings
from tracking.storage.dynamo import aws_client

TEMPLATE = Template.load({"StageName": "bench"})
ADMIN_KEY = "bench-admin-key-000000000000000"
ADMIN = {"x-api-key": ADMIN_KEY}
# What a browser sends; it is stored in each widget event's context, so it counts in its size.
BROWSER = {"User-Agent": "Mozilla/5.0 (bench)"}

# -- functions in this process, on DynamoDB Local -----------------------------------------------------


@contextlib.contextmanager
def local_dynamodb() -> Iterator[dynamodb.Database]:
    database = dynamodb.start(None)
    try:
        dynamodb.ensure_tables(database, TEMPLATE)
        yield database
    finally:
        database.stop()


@contextlib.contextmanager
def environment_of(function: str, database: dynamodb.Database) -> Iterator[None]:
    """The function's own environment from the template, pointed at ``database``."""

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(
        function_environment(
            TEMPLATE.functions()[function],
            {**dynamodb.local_environment(database.endpoint), "TRACKING_ADMIN_KEY": ADMIN_KEY},
        )
    )
    aws_client.cache_clear()
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws_client.cache_clear()
        get_settings.cache_clear()


class Function:
    """A warm container of one function (its module imported once), its output swallowed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._function = TEMPLATE.functions()[name]
        self._sink = io.StringIO()
        with contextlib.redirect_stdout(self._sink):
            self._handler = load_handler(self._function)

    def __call__(self, event: dict[str, Any]) -> Any:
        function = self._function
        self._sink.seek(0)
        self._sink.truncate()
        with contextlib.redirect_stdout(self._sink):
            return self._handler(event, LambdaContext(self.name, function.memory_mb, function.timeout_s))

    def output(self) -> str:
        """What the last invocation printed (its log and metric lines)."""
        return self._sink.getvalue()
