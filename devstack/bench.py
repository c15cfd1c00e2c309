"""``make bench``: the pipeline measured against the floor it cannot beat, side by side in one run.

Every figure is a ratio of two things measured here, now, on this machine, so a busy machine moves
it little. Writes ``bench/results.json`` and ``bench/results.md``; docs/PERFORMANCE.md and
docs/COST.md explain them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import dynamodb, load
from devstack.capacity import Usage, metered
from devstack.lambdas import LambdaContext, function_environment, load_handler
from devstack.stack import start_stack, stop_stack
from devstack.template import ROOT, Template

RESULTS = ROOT / "bench"
TEMPLATE = Template.load({"AdminKey": "bench-admin-key-000000000000000", "StageName": "bench"})
ADMIN = {"x-api-key": "bench-admin-key-000000000000000"}
TARGETS = {
    "cold_start_ratio.ingest": ("<=", 1.3),
    "cold_start_ratio.aggregate": ("<=", 1.3),
    "cold_start_ratio.query": ("<=", 1.3),
    "ingest_overhead_ratio": ("<=", 1.5),
    "aggregate_writes_per_group": ("==", 1.0),
    "query_requests_per_page": ("<=", 2),
    "cost_overhead_ratio.single": ("<=", 1.3),
    "cost_overhead_ratio.batched": ("<=", 1.5),
    "load_aggregates_exact": ("==", 1.0),
}

# us-east-1 list prices (USD), per million unless said otherwise.
PRICES = {
    "api_gateway_rest_request": 3.50,
    "waf_request": 0.60,
    "lambda_request": 0.20,
    "lambda_arm64_gb_second": 13.3334,  # $0.0000133334 per GB-second
    "dynamodb_write_unit": 0.625,
    "dynamodb_read_unit": 0.125,
    "cloudwatch_logs_ingested_gb": 0.50,  # per GB, not per million
}
# CloudWatch Logs bills each log event's bytes plus 26 bytes of overhead.
LOG_EVENT_OVERHEAD_BYTES = 26
# What a typical ingest request puts into the access log's ``$context`` variables.
ACCESS_LOG_SAMPLE = {
    "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    "identity.sourceIp": "203.0.113.42",
    "requestTime": "25/Nov/2026:07:13:14 +0000",
    "httpMethod": "POST",
    "resourcePath": "/api/analytics/track",
    "status": "200",
    "responseLength": "16",
    "responseLatency": "12",
    "integrationLatency": "11",
}


def access_log_bytes() -> int:
    """Bytes one request adds to the API's access log, from the format in template.yaml."""
    api = TEMPLATE.of_type("AWS::Serverless::Api")["TrackingApi"]
    line: str = api["Properties"]["AccessLogSetting"]["Format"]
    for name, value in ACCESS_LOG_SAMPLE.items():
        line = line.replace(f"$context.{name}", value)
    line = re.sub(r"\$context\.[A-Za-z.]+", "-", line)
    return len(line.encode()) + LOG_EVENT_OVERHEAD_BYTES


# -- cold start -----------------------------------------------------------------------------------

FLOOR_CODE = (
    "import time;t=time.process_time();import boto3;boto3.client('dynamodb');print(time.process_time()-t)"
)


def _handler_code(function: str) -> str:
    path = TEMPLATE.functions()[function].code_dir / "app.py"
    return (
        "import time,importlib.util;t=time.process_time();"
        f"s=importlib.util.spec_from_file_location('app',{str(path)!r});m=importlib.util.module_from_spec(s);"
        "s.loader.exec_module(m);print(time.process_time()-t)"
    )


def cold_start(runs: int) -> dict[str, Any]:
    """CPU time to import and initialise each handler module in a fresh interpreter, over the CPU
    time of ``import boto3`` plus a DynamoDB client; runs interleaved, medians compared."""
    local = dynamodb.local_environment("http://127.0.0.1:9")  # never contacted at import
    names = {"ingest": "IngestFunction", "aggregate": "AggregateFunction", "query": "QueryFunction"}
    samples: dict[str, list[float]] = {key: [] for key in ["floor", *names]}
    layer = str(ROOT / "layers" / "shared")
    for _ in range(runs):
        for key in ["floor", *names]:
            if key == "floor":
                env, code = {**os.environ, **local}, FLOOR_CODE
            else:
                function = TEMPLATE.functions()[names[key]]
                env, code = function_environment(function, local), _handler_code(names[key])
            env["PYTHONPATH"] = layer
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
            )
            samples[key].append(float(done.stdout))
    floor = statistics.median(samples["floor"])
    result: dict[str, Any] = {"floor_ms": round(floor * 1000, 1), "runs": runs}
    for key in names:
        median = statistics.median(samples[key])
        result[f"{key}_ms"] = round(median * 1000, 1)
        result[key] = round(median / floor, 3)
    return result


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
    from tracking.settings import get_settings  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(
        function_environment(TEMPLATE.functions()[function], dynamodb.local_environment(database.endpoint))
    )
    client.cache_clear()
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        client.cache_clear()
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


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    ip: str = "198.51.100.1",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    from devstack.apigw import match, proxy_event  # noqa: PLC0415

    found = match(TEMPLATE.routes(), method, path)
    assert found is not None, path
    route, params = found
    payload = b"" if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/5.0 (bench)", **(headers or {})}
    return proxy_event(
        method=method,
        raw_path=path,
        query="",
        headers=list(headers.items()),
        body=payload,
        source_ip=ip,
        route=route,
        path_parameters=params,
        stage="bench",
    )


def _widget_call(session: int, step: int) -> tuple[dict[str, Any], str]:
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
    return payload, f"10.{session // 65536 % 256}.{session // 256 % 256}.{session % 256}"


def ingest_overhead(database: dynamodb.Database, events: int) -> dict[str, Any]:
    """Wall time per event through the ingest handler (an API Gateway event in, the event stored),
    over a bare PutItem of the same stored item on the same endpoint; interleaved blocks."""
    from tracking.storage.dynamo import client  # noqa: PLC0415

    with environment_of("IngestFunction", database):
        ingest = Function("IngestFunction")
        db = client()
        for warm in range(40):
            payload, ip = _widget_call(10_000 + warm, warm)
            ingest(api_event("POST", "/api/analytics/track", payload, ip=ip))
        stored = db.scan(TableName="EventsTable", Limit=1)["Items"][0]
        handler_times: list[float] = []
        put_times: list[float] = []
        block = 20
        for start in range(0, events, block):
            calls = [_widget_call(start + n // 8, start + n) for n in range(block)]
            started = time.perf_counter()
            for payload, ip in calls:
                answer = ingest(api_event("POST", "/api/analytics/track", payload, ip=ip))
                assert answer["statusCode"] == 200, answer
            handler_times.append((time.perf_counter() - started) / block)
            started = time.perf_counter()
            for n in range(block):
                item = {**stored, "sk": {"S": f"g:bench{start + n:08d}"}}
                db.put_item(TableName="EventsTable", Item=item)
            put_times.append((time.perf_counter() - started) / block)
    handler, put = statistics.mean(handler_times), statistics.mean(put_times)
    return {
        "handler_ms": round(handler * 1000, 3),
        "put_item_ms": round(put * 1000, 3),
        "ratio": round(handler / put, 3),
    }


# -- aggregation -----------------------------------------------------------------------------------------


def _stream_records(events: list[Any], first_seq: int = 1) -> list[dict[str, Any]]:
    from tracking.storage.events import event_to_item  # noqa: PLC0415

    return [
        {
            "eventID": f"bench-{first_seq + n}",
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                "SequenceNumber": f"{first_seq + n:021d}",
                "NewImage": event_to_item(event, 1_900_000_000),
                "StreamViewType": "NEW_IMAGE",
            },
        }
        for n, event in enumerate(events)
    ]


def _tumbling(shard: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": records,
        "window": {"start": "", "end": ""},
        "state": {},
        "shardId": shard,
        "isFinalInvokeForWindow": False,
    }


def _plugin_events(count: int, users: int, seed: int) -> list[Any]:
    from decimal import Decimal  # noqa: PLC0415

    from tracking.models.canonical import CanonicalEvent  # noqa: PLC0415

    rng = random.Random(seed)  # noqa: S311 - workload, not a secret
    keys: dict[str, list[Any]] = {
        "emoji": ["😍", "👏", "🎉"],
        "handouts": ["slides.pdf", "notes.pdf"],
        "rating": [Decimal(n) for n in range(1, 6)],
        "name": ["Ana", "Bo"],
    }
    now = int(time.time() * 1000)
    events = []
    for n in range(count):
        key = rng.choice(sorted(keys))
        events.append(
            CanonicalEvent(
                plugin_id="bench-plugin",
                user_id=f"user-{rng.randrange(users):05d}",
                key=key,
                dialect="plugin",
                event_id=f"g:{now:011x}{n:020x}",
                value=rng.choice(keys[key]),
                event_time=now + n,
                received_at=now + n,
            )
        )
    return events


BENCH_CONFIG = {
    "tracking": {
        "events": [
            {"key": "emoji", "name": {"en": "Emoji"}, "aggregations": ["group_array", "increment"]},
            {"key": "handouts", "name": {"en": "Handouts"}, "aggregations": ["array", "group_array"]},
            {"key": "rating", "name": {"en": "Rating"}, "aggregations": ["average"], "value_type": "number"},
            {"key": "name", "name": {"en": "Name"}, "aggregations": ["string"]},
        ]
    }
}


class _MemoryStore:
    """Storage stubbed out: the aggregator's logic alone is measured."""

    def __init__(self) -> None:
        self.saved = 0

    def load(self, aggregates: Any, rollups: Any, shard: str) -> tuple[dict[Any, Any], dict[Any, Any]]:
        return {}, {}

    def get_aggregate(self, key: Any) -> None:
        return None

    def save(self, state: Any) -> None:
        self.saved += 1


def aggregate_throughput(records: int) -> dict[str, Any]:
    """Records per second through the aggregator's parsing, grouping and folds, on one core."""
    from tracking.aggregator import Aggregator, RawRecord  # noqa: PLC0415
    from tracking.models.config import PluginConfig, PublishedConfig  # noqa: PLC0415

    published = PublishedConfig(
        plugin_id="bench-plugin", config=PluginConfig.model_validate(BENCH_CONFIG), version=1, published_at=0
    )

    class Configs:
        def get_config(self, plugin_id: str) -> PublishedConfig:
            return published

    aggregator = Aggregator(_MemoryStore(), Configs(), workers=1)
    batches = []
    stream = _stream_records(_plugin_events(records, users=2_000, seed=1))
    for start in range(0, len(stream), 100):
        batches.append(
            [
                RawRecord(r["dynamodb"]["SequenceNumber"], "INSERT", r["dynamodb"]["NewImage"])
                for r in stream[start : start + 100]
            ]
        )
    started = time.process_time()
    for batch in batches:
        failures = aggregator.process("shard-bench", batch)
        assert not failures, failures
    elapsed = time.process_time() - started
    return {"records": records, "cpu_seconds": round(elapsed, 3), "records_per_s": round(records / elapsed)}


def aggregate_writes(database: dynamodb.Database, batches: int) -> dict[str, Any]:
    """Writes to each (plugin, key, user) aggregate per batch, through the real function."""
    from tracking.storage.dynamo import client  # noqa: PLC0415

    with environment_of("QueryFunction", database):
        assert (
            Function("QueryFunction")(
                api_event("PUT", "/v1/plugins/bench-plugin/config", BENCH_CONFIG, headers=ADMIN)
            )["statusCode"]
            == 200
        )
    per_group: list[int] = []
    groups = 0
    with environment_of("AggregateFunction", database):
        aggregate = Function("AggregateFunction")
        events = _plugin_events(batches * 100, users=30, seed=2)
        records = _stream_records(events)
        for start in range(0, len(records), 100):
            with metered(client()) as usage:
                answer = aggregate(_tumbling("shard-bench", records[start : start + 100]))
            assert answer["batchItemFailures"] == [], answer
            written = {
                item: n
                for item, n in usage.items_written.items()
                if item[0] == "AggregatesTable" and item[1].startswith("u\x1f")
            }
            per_group += list(written.values())
            groups += len(written)
    return {
        "batches": batches,
        "groups": groups,
        "writes_per_group": round(sum(per_group) / len(per_group), 3),
        "max_writes_per_group": max(per_group),
    }


# -- query -----------------------------------------------------------------------------------------------


def query_page(database: dynamodb.Database) -> dict[str, Any]:
    """DynamoDB requests to serve one page of 100 users x 10 columns."""
    from tracking.aggregation import AggregateState  # noqa: PLC0415
    from tracking.storage.aggregates import aggregate_to_item  # noqa: PLC0415
    from tracking.storage.dynamo import client  # noqa: PLC0415

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
        "by_operation": dict(usage.requests),
        "read_units": usage.total_reads(),
    }


# -- cost ------------------------------------------------------------------------------------------------


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


def _run_workload(
    database: dynamodb.Database,
    name: str,
    calls: list[tuple[str, dict[str, Any], str]],
    events_per_second: int,
) -> Workload:
    """Send the calls through the ingest function, then deliver what it stored to the aggregate
    function in the batches a stream of ``events_per_second`` forms with a 1-second window."""
    from tracking.storage.dynamo import client  # noqa: PLC0415

    auth = {"Authorization": "Basic " + base64.b64encode(b"wk_bench_source:").decode()}
    with environment_of("IngestFunction", database):
        ingest = Function("IngestFunction")
        db = client()
        scan = db.get_paginator("scan")
        pages = scan.paginate(TableName="EventsTable", ProjectionExpression="sk")
        before = {item["sk"]["S"] for page in pages for item in page["Items"]}
        started = time.perf_counter()
        with metered(db) as ingest_usage:
            for path, body, ip in calls:
                answer = ingest(
                    api_event(
                        "POST",
                        path,
                        body,
                        ip=ip,
                        headers=auth if path.startswith("/v1/") and "plugins" not in path else None,
                    )
                )
                assert answer["statusCode"] == 200, answer
        ingest_seconds = time.perf_counter() - started
        items = [
            i
            for page in db.get_paginator("scan").paginate(TableName="EventsTable")
            for i in page["Items"]
            if i["sk"]["S"] not in before
        ]
    items.sort(key=lambda item: (int(item["received_at"]["N"]), item["sk"]["S"]))
    records = [
        {
            "eventID": f"w-{n}",
            "eventName": "INSERT",
            "dynamodb": {"SequenceNumber": f"{n + 1:021d}", "NewImage": item, "StreamViewType": "NEW_IMAGE"},
        }
        for n, item in enumerate(items)
        if item["kind"]["S"] in ("track", "page", "screen")  # the event source's filter
    ]
    batch = min(100, events_per_second)
    invocations = 0
    with environment_of("AggregateFunction", database):
        aggregate = Function("AggregateFunction")
        started = time.perf_counter()
        with metered(client()) as aggregate_usage:
            for start in range(0, len(records), batch):
                answer = aggregate(_tumbling(f"shard-{name}", records[start : start + batch]))
                assert answer["batchItemFailures"] == [], answer
                invocations += 1
        aggregate_seconds = time.perf_counter() - started
    return Workload(
        name,
        len(items),
        len(calls),
        ingest_usage,
        ingest_seconds,
        aggregate_usage,
        invocations,
        aggregate_seconds,
    )


def _single_calls(sessions: int) -> list[tuple[str, dict[str, Any], str]]:
    """Widget visitors and plugin participants, every event its own call; sessions interleave as
    they do when many people are on the site at once (a session: 8 calls over a minute or so)."""
    calls = []
    for step in range(8):
        for session in range(sessions):
            if session % 5 < 3:
                payload, ip = _widget_call(session, step)
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


def _batched_calls(batches: int) -> list[tuple[str, dict[str, Any], str]]:
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


def cost(database: dynamodb.Database, sessions: int, batches: int, events_per_second: int) -> dict[str, Any]:
    with environment_of("QueryFunction", database):
        query = Function("QueryFunction")
        config = {**BENCH_CONFIG, "write_keys": ["wk_bench_source"]}
        assert (
            query(api_event("PUT", "/v1/plugins/bench-plugin/config", config, headers=ADMIN))["statusCode"]
            == 200
        )
    memory_gb = TEMPLATE.functions()["IngestFunction"].memory_mb / 1024
    aggregate_gb = TEMPLATE.functions()["AggregateFunction"].memory_mb / 1024
    log_bytes = access_log_bytes()
    results: dict[str, Any] = {"access_log_bytes_per_request": log_bytes}
    for workload in (
        _run_workload(database, "single", _single_calls(sessions), events_per_second),
        _run_workload(database, "batched", _batched_calls(batches), events_per_second),
    ):
        per_event = 1 / workload.events
        requests = workload.requests * per_event
        ingest_duration = workload.ingest_seconds / workload.requests
        aggregate_duration = workload.aggregate_seconds / workload.aggregate_invocations
        lines = {
            "api_gateway": requests * PRICES["api_gateway_rest_request"],
            "waf": requests * PRICES["waf_request"],
            "ingest_lambda": requests
            * (PRICES["lambda_request"] + memory_gb * ingest_duration * PRICES["lambda_arm64_gb_second"]),
            "ingest_writes": workload.ingest.total_writes() * per_event * PRICES["dynamodb_write_unit"],
            "ingest_reads": workload.ingest.total_reads() * per_event * PRICES["dynamodb_read_unit"],
            "aggregate_lambda": workload.aggregate_invocations
            * per_event
            * (
                PRICES["lambda_request"]
                + aggregate_gb * aggregate_duration * PRICES["lambda_arm64_gb_second"]
            ),
            "aggregate_writes": workload.aggregate.total_writes() * per_event * PRICES["dynamodb_write_unit"],
            "aggregate_reads": workload.aggregate.total_reads() * per_event * PRICES["dynamodb_read_unit"],
            # A million events log requests x 10^6 lines of log_bytes; priced per 10^9 bytes.
            "access_logs": requests * 1e6 * log_bytes / 1e9 * PRICES["cloudwatch_logs_ingested_gb"],
        }
        total = sum(lines.values())
        floor = (
            requests * (PRICES["api_gateway_rest_request"] + PRICES["waf_request"])
            + PRICES["dynamodb_write_unit"]
        )
        results[workload.name] = {
            "events": workload.events,
            "requests_per_event": round(requests, 4),
            "ingest_ms_per_request": round(ingest_duration * 1000, 2),
            "aggregate_ms_per_batch": round(aggregate_duration * 1000, 2),
            "ingest_write_units_per_event": round(workload.ingest.total_writes() * per_event, 4),
            "ingest_write_units_by_table": dict(workload.ingest.write_units),
            "aggregate_invocations_per_event": round(workload.aggregate_invocations * per_event, 4),
            "aggregate_write_units_per_event": round(workload.aggregate.total_writes() * per_event, 4),
            "aggregate_read_units_per_event": round(workload.aggregate.total_reads() * per_event, 4),
            "usd_per_million_events": {name: round(value, 4) for name, value in lines.items()},
            "cost_per_million_usd": round(total, 4),
            "floor_per_million_usd": round(floor, 4),
            "cost_overhead_ratio": round(total / floor, 3),
        }
    return results


# -- load ------------------------------------------------------------------------------------------------


def load_run(events: int, clients: int) -> dict[str, Any]:
    """``make run`` on a scratch directory, ``clients`` concurrent HTTP clients sending mixed dialects
    on loopback, then every aggregate compared with what was sent."""
    with tempfile.TemporaryDirectory(prefix="tracking-load-") as scratch:
        stack = start_stack(Path(scratch))
        try:
            result = load.run(stack, events=events, clients=clients, drain_timeout_s=900)
        finally:
            stop_stack(stack)
    summary = result.summary()
    summary["exact"] = not result.failures and not result.mismatches
    summary["first_failures"] = result.failures[:5] + result.mismatches[:5]
    return summary


# -- report ----------------------------------------------------------------------------------------------


def flatten(results: dict[str, Any]) -> dict[str, float]:
    return {
        "cold_start_ratio.ingest": results["cold_start"]["ingest"],
        "cold_start_ratio.aggregate": results["cold_start"]["aggregate"],
        "cold_start_ratio.query": results["cold_start"]["query"],
        "ingest_overhead_ratio": results["ingest"]["ratio"],
        "aggregate_records_per_s": results["aggregate_logic"]["records_per_s"],
        "aggregate_writes_per_group": results["aggregate_writes"]["writes_per_group"],
        "query_requests_per_page": results["query_page"]["requests"],
        "cost_per_million_single_usd": results["cost"]["single"]["cost_per_million_usd"],
        "cost_per_million_batched_usd": results["cost"]["batched"]["cost_per_million_usd"],
        "cost_overhead_ratio.single": results["cost"]["single"]["cost_overhead_ratio"],
        "cost_overhead_ratio.batched": results["cost"]["batched"]["cost_overhead_ratio"],
        "load_events_per_s": results["load"]["events_per_s"],
        "load_latency_p50_ms": results["load"]["latency_p50_ms"],
        "load_latency_p99_ms": results["load"]["latency_p99_ms"],
        "load_aggregates_exact": 1.0 if results["load"]["exact"] else 0.0,
    }


def table(figures: dict[str, float]) -> str:
    rows = ["| figure | value | target | met |", "|---|---|---|---|"]
    for name, value in figures.items():
        target = TARGETS.get(name)
        if target is None:
            rows.append(f"| `{name}` | {value} | | |")
            continue
        op, limit = target
        met = value <= limit if op == "<=" else value == limit
        rows.append(f"| `{name}` | {value} | {op} {limit} | {'yes' if met else '**no**'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs and events (a smoke test, not figures)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.json goes (default: bench/)")
    args = parser.parse_args(argv)
    quick = args.quick
    step: Callable[[str], None] = lambda what: print(f"bench: {what} ...", file=sys.stderr, flush=True)  # noqa: E731
    results: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()},
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    step("cold starts")
    results["cold_start"] = cold_start(3 if quick else 9)
    step("aggregation logic")
    results["aggregate_logic"] = aggregate_throughput(2_000 if quick else 20_000)
    with local_dynamodb() as database:
        step("ingest overhead")
        results["ingest"] = ingest_overhead(database, 100 if quick else 1_000)
        step("aggregate writes per group")
        results["aggregate_writes"] = aggregate_writes(database, 3 if quick else 20)
        step("query page")
        results["query_page"] = query_page(database)
        step("cost model workloads")
        results["cost"] = cost(
            database, sessions=50 if quick else 500, batches=10 if quick else 100, events_per_second=100
        )
    events, clients = (2_000, 8) if quick else (20_000, 16)
    step(f"load run: {events} events over {clients} clients on the local stack")
    results["load"] = load_run(events, clients)
    results["figures"] = flatten(results)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    name = "results.quick" if quick else "results"
    (out / f"{name}.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    report = (
        f"# Benchmark results\n\nGenerated {results['generated_at']} by `make bench`;"
        f" see docs/PERFORMANCE.md.\n\n{table(results['figures'])}\n"
    )
    (out / f"{name}.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
