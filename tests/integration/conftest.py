"""Handlers and stores on moto: tables created from template.yaml's definitions."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.local.lambdas import FunctionPool
from devstack.local.template import Template
from tests.conftest import sample_event
from tests.streams import invocation
from tracking.keys import CLAIM_KIND, REJECTED_KIND
from tracking.settings import get_settings
from tracking.storage.dynamo import from_item
from tracking.storage.events import event_from_item, is_event
from tracking.storage.live import lines_of

TEMPLATE = Template.load()


@pytest.fixture
def aws() -> Iterator[Any]:
    """A fresh moto account with every table of the template; yields a boto3 DynamoDB client."""
    with mock_aws():
        client = boto3.client("dynamodb")
        for definition in TEMPLATE.table_definitions().values():
            client.create_table(**definition["create"])
        yield client


Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def new_container(function: str) -> Invoke:
    """A fresh container of ``function``: its own module globals, caches and limiter leases."""
    pool = FunctionPool(TEMPLATE.functions()[function], size=1)  # one fresh container per test

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = pool.invoke(event)
        return result

    return invoke


@pytest.fixture
def ingest(aws: Any) -> Invoke:
    return new_container("IngestFunction")


@pytest.fixture
def query(aws: Any) -> Invoke:
    return new_container("QueryFunction")


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Changes the functions' environment; containers started afterwards read it."""

    def apply(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def aggregate(aws: Any) -> Invoke:
    return new_container("AggregateFunction")


@pytest.fixture
def forget(aws: Any) -> Invoke:
    return new_container("ForgetFunction")


@pytest.fixture
def demo_config(query: Invoke) -> dict[str, Any]:
    """The sample config published for ``demo-plugin`` (write key ``wk_live_123``)."""
    event = sample_event("config-put")
    answer = query(event)
    assert answer["statusCode"] == 200, answer["body"]
    config: dict[str, Any] = json.loads(event["body"])
    return config


def body(answer: dict[str, Any]) -> Any:
    return json.loads(answer["body"]) if answer.get("body") else None


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    """Every item of a table (a scan answers at most 1 MB at a time)."""
    return [item for page in client.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]


def stored_events(client: Any) -> list[dict[str, Any]]:
    """The events stored so far (the table also holds recorded rejections)."""
    items = scan(client, "EventsTable")
    return [event_from_item(item).model_dump() for item in items if is_event(from_item(item))]


def stored_rejections(client: Any) -> list[dict[str, Any]]:
    items = [from_item(item) for item in scan(client, "EventsTable")]
    return [item for item in items if item.get("kind") == REJECTED_KIND]


def aggregate_stored_events(dynamodb: Any, aggregate: Invoke, shard: str = "shard-1") -> None:
    """What the stream would deliver for every event stored so far (moto has no stream to poll)."""
    # Events and recorded rejections, in the order they were stored (the event source mapping's filter
    # leaves the claims of client ids out).
    items = [item for item in scan(dynamodb, "EventsTable") if item.get("kind", {}).get("S") != CLAIM_KIND]
    items.sort(key=lambda i: int((i.get("received_at") or i["at"])["N"]))
    records = [
        {
            "eventID": f"evt-{n}",
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "dynamodb": {"SequenceNumber": f"{n:021d}", "NewImage": item, "StreamViewType": "NEW_IMAGE"},
        }
        for n, item in enumerate(items, start=1)
    ]
    for start in range(0, len(records), 100):  # the event source mapping's BatchSize
        answer = aggregate(invocation(shard, records[start : start + 100]))
        assert answer["batchItemFailures"] == [], answer


class Stream:
    """The events table's stream as Lambda delivers it: every item written since the last delivery,
    in write order, with ever-growing sequence numbers (moto has no stream to poll)."""

    def __init__(self, aws: Any, aggregate: Invoke, forget: Invoke) -> None:
        self._aws, self._aggregate, self._forget = aws, aggregate, forget
        self._seen: set[tuple[str, str]] = set()
        self._seq = 0

    def _new_items(self) -> list[dict[str, Any]]:
        items = [i for i in scan(self._aws, "EventsTable") if (i["pk"]["S"], i["sk"]["S"]) not in self._seen]

        def written(item: dict[str, Any]) -> int:
            stamp = item.get("received_at") or item.get("at") or item.get("requested_at")
            return int(stamp["N"]) if stamp else 0

        items.sort(key=written)
        return items

    def _records(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        records = []
        for item in items:
            self._seen.add((item["pk"]["S"], item["sk"]["S"]))
            self._seq += 1
            records.append(
                {
                    "eventID": f"evt-{self._seq}",
                    "eventName": "INSERT",
                    "eventSource": "aws:dynamodb",
                    "dynamodb": {
                        "SequenceNumber": f"{self._seq:021d}",
                        "NewImage": item,
                        "StreamViewType": "NEW_IMAGE",
                    },
                }
            )
        return records

    def aggregate(self, batch_size: int = 100) -> None:
        """Deliver what was written since, in batches of ``batch_size`` (the mapping's BatchSize); as the
        mapping's filter does, without deletion steps and claims."""
        records = self._records(
            [i for i in self._new_items() if i["kind"]["S"] not in ("deletion", CLAIM_KIND)]
        )
        for start in range(0, len(records), batch_size):
            answer = self._aggregate(invocation("shard-1", records[start : start + batch_size]))
            assert answer["batchItemFailures"] == []

    def forget_all(self, max_steps: int = 200) -> None:
        """Run every pending deletion step, and the steps they write, until none is left."""
        for _ in range(max_steps):
            steps = [i for i in self._new_items() if i["kind"]["S"] == "deletion"]
            if not steps:
                return
            for record in self._records(steps):
                assert self._forget({"Records": [record]}) == {"batchItemFailures": []}
        raise AssertionError("the deletion did not finish")


@pytest.fixture
def stream(aws: Any, aggregate: Invoke, forget: Invoke, function_env: Any) -> Stream:
    return Stream(aws, aggregate, forget)


def readable(item: dict[str, Any]) -> str:
    """An item as text, the live view's compressed rings included."""
    rings = "\n".join(lines_of(item)) if "events" in item and "B" in item["events"] else ""
    return json.dumps({name: value for name, value in item.items() if name != "events"}) + rings
