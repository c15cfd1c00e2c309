"""The cost model: what the workloads used (requests, function time, DynamoDB units, log bytes),
priced per million events at us-east-1 list prices, next to the floor of API Gateway, WAF and one
write unit per event."""

from __future__ import annotations

import json
import re
from typing import Any

from devstack.bench.aggregation import BENCH_CONFIG
from devstack.bench.bill import PRICES
from devstack.bench.clients import captured_calls
from devstack.bench.harness import ADMIN, TEMPLATE, Function, environment_of
from devstack.bench.workloads import (
    STORAGE_OVERHEAD_BYTES,
    batched_calls,
    browser_calls,
    ingest_calls,
    run_workload,
    single_calls,
    widget_call,
)
from devstack.local import dynamodb
from devstack.local.builders import api_event
from devstack.local.capacity import item_size, metered, write_units
from tracking.api_errors import RateLimited
from tracking.keys import CLAIM_KIND
from tracking.ratelimit import RateLimiter
from tracking.storage.control import ControlStore
from tracking.storage.dynamo import client

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


def payload_sizes(
    database: dynamodb.Database, captured: dict[str, list[tuple[str, dict[str, Any]]]]
) -> dict[str, Any]:
    """Per client: the bytes of each call as sent (JSON, inflated), of the item stored for it (as
    DynamoDB counts an item's size, and as it bills storage: 100 bytes more), and its write units
    (its id's claim included, for an id the client chose)."""
    plugin_call = {"key": "handouts", "value": "slides.pdf", "user_id": "participant-payload"}
    calls = {
        **{name: [(path, body) for path, body in visit] for name, visit in captured.items()},
        "widget": [("/api/analytics/track", widget_call(900_001, step)[0]) for step in range(8)],
        "plugin": [("/v1/plugins/bench-plugin/track", plugin_call)],
    }
    sizes: dict[str, Any] = {}
    for n, (name, visit) in enumerate(calls.items()):
        # A library's batch is sent as a batch of that one call (the item stored is the same).
        sent_calls = [(path, {"batch": [body]} if path.endswith("/batch") else body) for path, body in visit]
        items, _, _ = ingest_calls(database, [(path, body, f"10.240.{n}.1") for path, body in sent_calls])
        # An event, and for an id the client chose (a messageId) the id's claim.
        events = [item for item in items if item.get("kind", {}).get("S") != CLAIM_KIND]
        claims = [item_size(item) for item in items if item.get("kind", {}).get("S") == CLAIM_KIND]
        assert len(events) == len(visit), (name, len(events), len(visit))
        stored = [item_size(item) for item in events]
        sent = [
            len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()) for _, body in visit
        ]
        sizes[name] = {
            "calls": len(visit),
            "sent_bytes_per_call": round(sum(sent) / len(sent)),
            "item_bytes_per_event": round(sum(stored) / len(stored)),
            "stored_bytes_per_event": round(sum(stored) / len(stored)) + STORAGE_OVERHEAD_BYTES,
            "write_units_per_event": round(
                sum(write_units(size) for size in [*stored, *claims]) / len(stored), 3
            ),
            "claim_bytes_per_event": round(sum(claims) / len(stored)),
            "by_call": [
                {
                    "type": body.get("type") or body.get("event") or "track",
                    "sent": b,
                    "item": i,
                    "wru": write_units(i),
                }
                for (_, body), b, i in zip(visit, sent, stored, strict=True)
            ],
        }
    return sizes


def limiter_writes(
    database: dynamodb.Database, containers: tuple[int, ...] = (1, 2, 8, 40)
) -> dict[str, Any]:
    """Limiter writes per request when ``n`` warm containers take one IP's requests in turn, for
    the limit's 120 requests of a minute (the single workload has one container per IP)."""
    results = {}
    with environment_of("IngestFunction", database):
        store = ControlStore(client(), "ControlTable")
        for n in containers:
            limiters = [RateLimiter(store, 120, max_lease=16) for _ in range(n)]
            admitted = 0
            with metered(client()) as usage:
                for request in range(120):
                    try:
                        limiters[request % n].check(f"198.51.100.{n}")
                        admitted += 1
                    except RateLimited:
                        pass  # leases idle in other containers: at least 110 of 120 get through
            results[f"{n}_containers"] = {
                "write_units_per_request": round(usage.total_writes() / 120, 3),
                "admitted_of_120": admitted,
            }
    return results


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
    captured = captured_calls()
    results: dict[str, Any] = {"access_log_bytes_per_request": log_bytes}
    workloads = [
        run_workload(database, "single", single_calls(sessions), events_per_second),
        run_workload(database, "batched", batched_calls(batches), events_per_second),
    ]
    if "analytics.js" in captured:  # a real browser's calls (Chromium is needed to capture them)
        visit = browser_calls(sessions, captured["analytics.js"])
        workloads.append(run_workload(database, "browser", visit, events_per_second))
    results["metric_line_bytes"] = max(w.metric_line_bytes for w in workloads) + LOG_EVENT_OVERHEAD_BYTES
    results["payloads"] = payload_sizes(database, captured)
    results["limiter_writes_per_request"] = limiter_writes(database)
    for workload in workloads:
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
            "stored_bytes_per_event": round(workload.stored_event_bytes * per_event, 1),
            "aggregate_bytes_per_event": round(workload.aggregate_table_bytes * per_event, 1),
            "usd_per_million_events": {name: round(value, 4) for name, value in lines.items()},
            "cost_per_million_usd": round(total, 4),
            "floor_per_million_usd": round(floor, 4),
            "cost_overhead_ratio": round(total / floor, 3),
        }
    return results
