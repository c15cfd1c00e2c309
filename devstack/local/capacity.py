"""DynamoDB capacity a botocore client consumes, counted from the requests and answers themselves
(DynamoDB Local does not bill): write units per item written, read units per item read, as
on-demand tables charge them."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# One count of an item's size, DynamoDB's own (tests/e2e/test_item_sizes.py holds it to DynamoDB Local).
from tracking.storage.dynamo import item_size

__all__ = ["Usage", "item_size", "metered", "read_units", "write_units"]

KB = 1024


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    return float(units) if consistent else units / 2


@dataclass
class Usage:
    requests: Counter[str] = field(default_factory=Counter)  # by operation
    write_units: Counter[str] = field(default_factory=Counter)  # by table
    read_units: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # by table
    items_written: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (table, pk, sk)
    units_by_pk: Counter[str] = field(default_factory=Counter)  # write units, by partition key
    spans: list[tuple[str, float, float]] = field(default_factory=list)  # each request's table, times

    def round_trips(self, table: str | None = None) -> int:
        """How many times the caller waited (on ``table``, or on any) with nothing else in flight:
        requests that overlap in time (parallel queries) are one round trip."""
        trips, busy_until = 0, -math.inf
        for start, end in sorted((s, e) for t, s, e in self.spans if table is None or t == table):
            if start > busy_until:
                trips += 1
            busy_until = max(busy_until, end)
        return trips

    def total_writes(self) -> float:
        return float(sum(self.write_units.values()))

    def total_reads(self) -> float:
        return float(sum(self.read_units.values()))


class _Meter:
    def __init__(self) -> None:
        self.usage = Usage()
        self._lock = threading.Lock()
        self._pending = threading.local()

    def before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        operation = model.name
        with self._lock:
            self.usage.requests[operation] += 1
            self._pending.params = params
            self._pending.started = time.perf_counter()
            if operation == "PutItem":
                self._write(params["TableName"], params["Item"])
            elif operation == "BatchWriteItem":
                for table, requests in params["RequestItems"].items():
                    for request in requests:
                        if "PutRequest" in request:
                            self._write(table, request["PutRequest"]["Item"])
                        else:
                            self._write(table, request["DeleteRequest"]["Key"])
            elif operation == "TransactWriteItems":
                for action in params["TransactItems"]:
                    ((_, body),) = action.items()
                    item = body.get("Item") or body.get("Key") or {}
                    self._write(body["TableName"], item, factor=2)  # transactions bill twice
            elif operation in ("UpdateItem", "DeleteItem"):
                self._write(params["TableName"], params["Key"], minimum_only=True)

    def _write(
        self, table: str, item: Mapping[str, Any], factor: int = 1, minimum_only: bool = False
    ) -> None:
        size = 0 if minimum_only else item_size(item)
        self.usage.write_units[table] += factor * write_units(size)
        pk, sk = item.get("pk", {}).get("S", ""), item.get("sk", {}).get("S", "")
        self.usage.items_written[(table, pk, sk)] += 1
        self.usage.units_by_pk[pk] += factor * write_units(size)

    def after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        params = getattr(self._pending, "params", {})
        operation = model.name
        with self._lock:
            started = getattr(self._pending, "started", 0.0)
            self.usage.spans.append((params.get("TableName", ""), started, time.perf_counter()))
            if operation == "GetItem" and "Item" in parsed:
                self.usage.read_units[params["TableName"]] += read_units(
                    item_size(parsed["Item"]), bool(params.get("ConsistentRead"))
                )
            elif operation == "GetItem":
                self.usage.read_units[params["TableName"]] += read_units(
                    0, bool(params.get("ConsistentRead"))
                )
            elif operation == "BatchGetItem":
                responses = parsed.get("Responses", {})
                unprocessed = parsed.get("UnprocessedKeys", {})
                for table, asked in params["RequestItems"].items():
                    consistent = bool(asked.get("ConsistentRead"))
                    items = responses.get(table, [])
                    for item in items:
                        self.usage.read_units[table] += read_units(item_size(item), consistent)
                    # An item that does not exist is billed as a read of the minimum size.
                    missing = (
                        len(asked["Keys"]) - len(items) - len(unprocessed.get(table, {}).get("Keys", []))
                    )
                    self.usage.read_units[table] += missing * read_units(0, consistent)
            elif operation == "Query":
                size = sum(item_size(item) for item in parsed.get("Items", []))
                self.usage.read_units[params["TableName"]] += read_units(
                    size, bool(params.get("ConsistentRead"))
                )


@contextmanager
def metered(client: Any) -> Iterator[Usage]:
    """Count what ``client`` asks of DynamoDB while the block runs."""
    meter = _Meter()
    client.meta.events.register("before-parameter-build.dynamodb.*", meter.before)
    client.meta.events.register("after-call.dynamodb.*", meter.after)
    try:
        yield meter.usage
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.*", meter.before)
        client.meta.events.unregister("after-call.dynamodb.*", meter.after)
