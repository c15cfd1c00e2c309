"""The workloads: each function run in this process as a warm container of its own on DynamoDB Local
(its environment from ``template.yaml``), fed events built as AWS delivers them, and the local stack
under a load run."""

from __future__ import annotations

import base64
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.bench.harness import (
    ADMIN,
    BROWSER,
    TEMPLATE,
    Function,
    environment_of,
)
from devstack.bench.stats import spread
from devstack.local import dynamodb
from devstack.local.builders import api_event, invocation, stream_record
from devstack.local.capacity import Usage, item_size, metered
from devstack.local.esm import passes_filters
from devstack.local.stack import start_stack, stop_stack
from devstack.tools import load
from tracking.keys import CLAIM_KIND
from tracking.models.aggregates import AggregateState
from tracking.storage.aggregate_items import aggregate_to_item
from tracking.storage.aggregates import AggregateStore
from tracking.storage.dynamo import client


def widget_call(session: int, step: int, network: int = 10) -> tuple[dict[str, Any], str]:
    events = [
        "visitor",
        "popup_displayed",
        "bot_open",
        "convo_started",
        "message_sent",
        "message_sent",
        "message_sent",
        "added_to_cart",
    ]
    payload = {
        "event": events[step % len(events)],
        "token": f"bench_visitor_{session:06d}{session % 2}",
        "ab_test": True,
        "data": {
            "chatbot_id": "bench-bot",
            "url": "https://shop.example.com/products/lamp",
            "popup_version": "v2",
        },
    }
    return payload, f"{network}.{session // 65536 % 256}.{session // 256 % 256}.{session % 256}"


def ingest_overhead(database: dynamodb.Database, events: int) -> dict[str, Any]:
    """Wall time per event through the ingest handler (an API Gateway event in, the event stored),
    over a bare PutItem of the same stored item on the same endpoint; interleaved blocks."""

    with environment_of("IngestFunction", database):
        ingest = Function("IngestFunction")
        db = client()
        for warm in range(40):
            payload, ip = widget_call(10_000 + warm, warm)
            ingest(api_event("POST", "/api/analytics/track", payload, ip=ip, headers=BROWSER, stage="bench"))
        stored = db.scan(TableName="EventsTable", Limit=1)["Items"][0]
        handler_times: list[float] = []
        put_times: list[float] = []
        block = 20
        for start in range(0, events, block):
            calls = [widget_call(start + n // 8, start + n) for n in range(block)]
            started = time.perf_counter()
            for payload, ip in calls:
                answer = ingest(
                    api_event("POST", "/api/analytics/track", payload, ip=ip, headers=BROWSER, stage="bench")
                )
                assert answer["statusCode"] == 200, answer
            handler_times.append((time.perf_counter() - started) / block)
            started = time.perf_counter()
            for n in range(block):
                item = {**stored, "sk": {"S": f"g:bench{start + n:08d}"}}
                db.put_item(TableName="EventsTable", Item=item)
            put_times.append((time.perf_counter() - started) / block)
    # Each block of handler calls against the block of bare puts right after it: a slow moment of
    # the machine slows both sides of one block, and the median of the blocks' ratios ignores it.
    ratios = spread([h / p for h, p in zip(handler_times, put_times, strict=True)], 3)
    return {
        "handler_ms": round(statistics.median(handler_times) * 1000, 3),
        "put_item_ms": round(statistics.median(put_times) * 1000, 3),
        "ratio": ratios["median"],
        "ratio_spread": ratios,
    }


# -- query -----------------------------------------------------------------------------------------------


def query_page(database: dynamodb.Database) -> dict[str, Any]:
    """DynamoDB requests to serve one page of 100 users x 10 columns."""

    keys = [f"metric-{n}" for n in range(10)]
    config = {
        "tracking": {"events": [{"key": k, "name": {"en": k}, "aggregations": ["increment"]} for k in keys]}
    }
    with environment_of("QueryFunction", database):
        query = Function("QueryFunction")
        assert (
            query(api_event("PUT", "/v1/plugins/bench-page/config", config, headers=ADMIN))["statusCode"]
            == 200
        )
        db = client()
        requests = [
            {
                "PutRequest": {
                    "Item": aggregate_to_item(
                        AggregateState(
                            plugin_id="bench-page", user_id=f"user-{u:04d}", key=k, version=1, count=u + 1
                        )
                    )
                }
            }
            for u in range(150)
            for k in keys
        ]
        for start in range(0, len(requests), 25):
            db.batch_write_item(RequestItems={"AggregatesTable": requests[start : start + 25]})
        AggregateStore(db, "AggregatesTable").record_suffixes_of(r["PutRequest"]["Item"] for r in requests)
        query(api_event("GET", "/v1/plugins/bench-page/columns", headers=ADMIN))  # a warm container
        event = api_event("GET", "/v1/plugins/bench-page/rows", headers=ADMIN)
        event["queryStringParameters"] = {"limit": "100"}
        with metered(db) as usage:
            answer = query(event)
        page = json.loads(answer["body"])
    assert len(page["rows"]) == 100, "the page is not 100 users"
    assert all(len(r["values"]) == 10 for r in page["rows"]), "the page is not 10 columns"
    return {
        "requests": sum(usage.requests.values()),
        "round_trips": usage.round_trips("AggregatesTable"),  # the page's own reads
        "round_trips_with_config": usage.round_trips(),
        "by_operation": dict(usage.requests),
        "read_units": usage.total_reads(),
    }


@dataclass
class Workload:
    name: str
    events: int  # events stored
    requests: int  # API calls
    ingest: Usage
    ingest_seconds: float  # wall time of all ingest invocations
    aggregate: Usage
    aggregate_invocations: int
    aggregate_seconds: float
    stored_event_bytes: int  # the events' items and their ids' claims as DynamoDB bills storage (+100 B each)
    aggregate_table_bytes: int  # what the aggregates table grew by, the same way
    metric_line_bytes: int = 0  # the aggregate function's metric (EMF) log line per invocation


STORAGE_OVERHEAD_BYTES = 100  # DynamoDB bills each stored item 100 bytes more than its size


def table_bytes(db: Any, table: str) -> int:
    """Stored size of a whole table, as DynamoDB bills it."""
    pages = db.get_paginator("scan").paginate(TableName=table)
    return sum(item_size(item) + STORAGE_OVERHEAD_BYTES for page in pages for item in page["Items"])


def ingest_calls(
    database: dynamodb.Database, calls: list[tuple[str, dict[str, Any], str]]
) -> tuple[list[dict[str, Any]], Usage, float]:
    """Send the calls through the ingest function; the items they stored (in the order received),
    the capacity they used and the wall time they took."""
    auth = {"Authorization": "Basic " + base64.b64encode(b"wk_bench_source:").decode()}
    with environment_of("IngestFunction", database):
        ingest = Function("IngestFunction")
        db = client()
        scan = db.get_paginator("scan")
        pages = scan.paginate(TableName="EventsTable", ProjectionExpression="sk")
        before = {item["sk"]["S"] for page in pages for item in page["Items"]}
        started = time.perf_counter()
        with metered(db) as usage:
            for path, body, ip in calls:
                segment = path.startswith("/v1/") and "plugins" not in path
                headers = {**BROWSER, **auth} if segment else BROWSER
                answer = ingest(api_event("POST", path, body, ip=ip, headers=headers, stage="bench"))
                assert answer["statusCode"] == 200, answer
        seconds = time.perf_counter() - started
        items = [
            i
            for page in db.get_paginator("scan").paginate(TableName="EventsTable")
            for i in page["Items"]
            if i["sk"]["S"] not in before and i.get("kind", {}).get("S") != "rejected"
        ]
    # In the order they were written (a client id's claim has the time it was claimed).
    items.sort(key=lambda item: (int((item.get("received_at") or item["claimed_at"])["N"]), item["sk"]["S"]))
    return items, usage, seconds


def run_workload(
    database: dynamodb.Database,
    name: str,
    calls: list[tuple[str, dict[str, Any], str]],
    events_per_second: int,
) -> Workload:
    """Send the calls through the ingest function, then deliver what it stored to the aggregate
    function in the batches a stream of ``events_per_second`` forms with a 1-second window."""

    items, ingest_usage, ingest_seconds = ingest_calls(database, calls)
    # What the event source mapping's filter (template.yaml) lets through to the aggregate function.
    mapping = TEMPLATE.stream_mapping("AggregateFunction")
    every = [stream_record(n, None, image=item) for n, item in enumerate(items, start=1)]
    records = [record for record in every if passes_filters(mapping, record)]
    batch = min(100, events_per_second)
    invocations = 0
    with environment_of("AggregateFunction", database):
        aggregate = Function("AggregateFunction")
        aggregates_before = table_bytes(client(), "AggregatesTable")
        started = time.perf_counter()
        with metered(client()) as aggregate_usage:
            for start in range(0, len(records), batch):
                answer = aggregate(invocation(f"shard-{name}", records[start : start + batch]))
                assert answer["batchItemFailures"] == [], answer
                invocations += 1
        aggregate_seconds = time.perf_counter() - started
        metric_lines = [line for line in aggregate.output().splitlines() if '"_aws"' in line]
        aggregates_after = table_bytes(client(), "AggregatesTable")
    return Workload(
        name,
        sum(1 for item in items if item.get("kind", {}).get("S") != CLAIM_KIND),  # (not the ids' claims)
        len(calls),
        ingest_usage,
        ingest_seconds,
        aggregate_usage,
        invocations,
        aggregate_seconds,
        stored_event_bytes=sum(item_size(item) + STORAGE_OVERHEAD_BYTES for item in items),
        aggregate_table_bytes=aggregates_after - aggregates_before,
        metric_line_bytes=max((len(line.encode()) for line in metric_lines), default=0),
    )


def single_calls(sessions: int) -> list[tuple[str, dict[str, Any], str]]:
    """Widget visitors and plugin participants, every event its own call; sessions interleave as
    they do when many people are on the site at once (a session: 8 calls over a minute or so)."""
    calls = []
    for step in range(8):
        for session in range(sessions):
            if session % 5 < 3:
                # Addresses no earlier phase used this minute: each visitor's IP is served by this
                # one container, as a session is (a window other containers hold costs more).
                payload, ip = widget_call(session, step, network=11)
                calls.append(("/api/analytics/track", payload, ip))
            else:
                key, value = [("emoji", "😍"), ("handouts", "slides.pdf"), ("rating", 4), ("name", "Ana")][
                    step % 4
                ]
                body = {"key": key, "value": value, "user_id": f"participant-{session:05d}"}
                calls.append(
                    ("/v1/plugins/bench-plugin/track", body, f"10.200.{session // 256 % 256}.{session % 256}")
                )
    return calls


def browser_calls(
    visitors: int, visit: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, dict[str, Any], str]]:
    """Visitors of a shop, each making the calls analytics.js made in a real browser (``visit``,
    from devstack/bench/clients.py), each visitor their own ids and IP; visits interleave."""
    calls = []
    for step, (path, body) in enumerate(visit):
        for visitor in range(visitors):
            call = {
                **body,
                "anonymousId": f"bench-anon-{visitor:06d}",
                "messageId": f"ajs-{visitor:06d}-{step}",
            }
            if call.get("userId"):
                call["userId"] = f"bench-shopper-{visitor:06d}"
            calls.append((path, call, f"10.230.{visitor // 256 % 256}.{visitor % 256}"))
    return calls


def batched_calls(batches: int) -> list[tuple[str, dict[str, Any], str]]:
    """Segment-style batches of 20 calls of one user each (what analytics libraries send)."""
    calls = []
    for n in range(batches):
        user = f"shopper-{n:05d}"
        batch: list[dict[str, Any]] = [
            {"type": "identify", "userId": user, "traits": {"plan": "pro"}, "messageId": f"b{n}-id"}
        ]
        batch += [
            {
                "type": "page",
                "name": "Product",
                "userId": user,
                "properties": {"path": f"/p/{i}"},
                "messageId": f"b{n}-p{i}",
            }
            for i in range(8)
        ]
        batch += [
            {
                "type": "track",
                "event": "Product Viewed",
                "userId": user,
                "properties": {"product_id": f"sku-{i}", "price": 19.9, "currency": "USD"},
                "messageId": f"b{n}-v{i}",
            }
            for i in range(5)
        ]
        batch += [
            {
                "type": "track",
                "event": "Product Added",
                "userId": user,
                "properties": {"product_id": f"sku-{i}", "price": 19.9, "currency": "USD"},
                "messageId": f"b{n}-a{i}",
            }
            for i in range(3)
        ]
        batch += [
            {
                "type": "track",
                "event": "Checkout Started",
                "userId": user,
                "properties": {"revenue": 59.7, "currency": "USD"},
                "messageId": f"b{n}-c",
            }
        ]
        batch += [
            {
                "type": "track",
                "event": "Order Completed",
                "userId": user,
                "properties": {
                    "order_id": f"o-{n}",
                    "currency": "USD",
                    "products": [{"product_id": "sku-1", "price": 19.9, "quantity": 3}],
                },
                "messageId": f"b{n}-o",
            }
        ]
        batch += [
            {
                "type": "track",
                "event": "handouts",
                "userId": user,
                "properties": {"value": "catalog.pdf"},
                "messageId": f"b{n}-h",
            }
        ]
        calls.append(("/v1/batch", {"batch": batch}, f"10.250.{n // 256 % 256}.{n % 256}"))
    return calls


# -- load ------------------------------------------------------------------------------------------------


LOAD_STREAM_SHARDS = 4


def load_run(events: int, clients: int) -> dict[str, Any]:
    """``make run`` on a scratch directory with 4 emulated stream shards, ``clients`` concurrent HTTP
    clients sending mixed dialects on loopback, then every aggregate compared with what was sent."""
    with tempfile.TemporaryDirectory(prefix="tracking-load-") as scratch:
        stack = start_stack(Path(scratch), extra_env={"LOCAL_STREAM_SHARDS": str(LOAD_STREAM_SHARDS)})
        try:
            result = load.run(stack, events=events, clients=clients, drain_timeout_s=900)
        finally:
            stop_stack(stack)
    summary = result.summary()
    summary["exact"] = not result.failures and not result.mismatches and not result.connection_errors
    summary["stream_shards"] = LOAD_STREAM_SHARDS
    summary["first_failures"] = result.connection_errors[:5] + result.failures[:5] + result.mismatches[:5]
    return summary
