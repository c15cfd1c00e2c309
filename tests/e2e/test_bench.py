"""``make bench`` keeps working: its quick mode runs every step (cold starts, DynamoDB Local, the cost
model, a load run on the local stack) and reports every figure the issue asks for. Figures are not
asserted here: they are measurements, and targets live in the benchmark's report, not in tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.bench.report import TARGETS
from devstack.local.lambdalayout import python313
from devstack.local.template import ROOT

pytestmark = pytest.mark.e2e

# The whole bill with the lake, hot events kept 400 days or 30, and the stream's shards after each.
LAKE_BILL = (
    "cost_per_million_total_usd_with_lake_400d_hot",
    "cost_per_million_total_usd_with_lake_30d_hot",
    "stream_shards_at_1k_per_s_400d",
    "stream_shards_at_1k_per_s_30d",
)
FIGURES = {
    "cold_start_ratio.ingest",
    "cold_start_ratio.aggregate",
    "cold_start_ratio.query",
    "ingest_overhead_ratio",
    "aggregate_records_per_s",
    "aggregate_writes_per_group",
    "query_requests_per_page",
    "query_round_trips_per_page",
    "cost_per_million_single_usd",
    "cost_per_million_batched_usd",
    "cost_overhead_ratio.single",
    "cost_overhead_ratio.batched",
    "link_extra_writes_per_anonymous_aggregate",
    "deletion_write_units_per_event",
    "deletion_read_units_per_event",
    "deletion_events_per_s",
    "load_events_per_s",
    "load_latency_p50_ms",
    "load_latency_p99_ms",
    "load_aggregates_exact",
    "load_connection_errors",
    "cost_per_million_total_usd.single",
    "cost_per_million_total_usd.batched",
    "fixed_monthly_usd",
    # The scale simulation: the quick mode runs 1k events/s only (10k and 100k in the full bench).
    "scale.max_wcu_per_partition_key.1k",
    "scale.max_wcu_per_item.1k",
    "scale.conflicts.1k",
    "scale.rows_page_round_trips.1k",
    "scale.max_rcu_per_partition_key.1k",
    "scale.config_reads_per_s.1k",
    "scale.config_stamp_reads_per_s.1k",
    "scale.suffixes_item_wcu_first_second",
    "scale.max_item_kb",
    *(
        f"scale.max_item_kb.{kind}"
        for kind in (
            "profile",
            "stored_event",
            "aggregate",
            "rejected",
            "funnel",
            "claim",
            "suffixes",
            "rollup",
        )
    ),
    "scale.max_item_kb_traffic",
    "scale.max_shards_per_item.1k",
    "scale.live_writes_per_event.1k",
    *(
        f"scale.client_named_wcu_per_event.{way}"
        for way in ("keyed_by_id", "claim_then_write", "transaction")
    ),
    "scale.summary_items_read.4_shards",
    "scale.summary_items_read.4000_shards",
    "scale.summary_items_read_today.4_shards",
    "scale.summary_items_read_today.4000_shards",
    # The local lake: the quick mode asks over 100,000 events (a million in the full bench).
    "lake.local_write_events_per_s",
    *(f"lake.query_ms.{name}_100k_events" for name in ("breakdown", "breakdown_column", "retention")),
    "lake.fixed_monthly_usd",
    *(f"lake.{figure}.{workload}" for figure in LAKE_BILL for workload in ("single", "batched")),
    # Events out: one webhook on the local stack, and the price per million delivered.
    "destinations.delivery_p50_ms",
    "destinations.delivery_p99_ms",
    "destinations.events_per_s",
    "destinations.cost_per_million_delivered_usd",
    # Bots and devices: what classifying a call's user agent costs ingest.
    "bot_check_us_per_call.cached",
    "bot_check_us_per_call.uncached",
    "agents.first_call_ms",
}
FULL_ONLY = {
    f"scale.{figure}.{rate}"
    for figure in (
        "max_wcu_per_partition_key",
        "max_wcu_per_item",
        "rows_page_round_trips",
        "max_rcu_per_partition_key",
        "config_reads_per_s",
        "config_stamp_reads_per_s",
        "max_shards_per_item",
        "live_writes_per_event",
    )
    for rate in ("10k", "100k")
} | {f"lake.query_ms.{name}_1m_events" for name in ("breakdown", "breakdown_column", "retention")}
# analytics.js runs in Chromium: without it the browser workload is left out (and said so).
BROWSER = {
    "cost_per_million_total_usd.browser",
    *(f"lake.{figure}.browser" for figure in LAKE_BILL),
    "stored_bytes_per_event.analytics_js",
    "write_units_per_event.analytics_js",
}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Cold start as deployed needs Python 3.13 (the runtime's): without it those figures are left out.
DEPLOYED = {f"cold_start_deployed_ratio.{name}" for name in ("ingest", "aggregate", "query")}


def test_quick_bench_reports_every_figure_and_an_exact_load_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack.bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.quick.json").read_text())
    expected = FIGURES | (BROWSER if CHROMIUM else set()) | (DEPLOYED if python313() else set())
    assert set(results["figures"]) == expected
    if python313():
        # As deployed, the layer's bytecode is used: no module of the layer compiles at start.
        for name in ("ingest", "aggregate", "query"):
            assert not [p for p in results["cold_start_deployed"][name]["compiled"] if "/opt/" in p]
    assert set(TARGETS) <= FIGURES | DEPLOYED | FULL_ONLY
    # Counting facts, not timings: these hold on any machine.
    assert results["figures"]["aggregate_writes_per_group"] == 1.0
    # A page of rows: 2 waves of parallel queries (the store's count, on the fakes of the simulation).
    assert results["figures"]["scale.rows_page_round_trips.1k"] <= 2
    assert results["load"]["exact"], results["load"]["first_failures"]
    assert results["destinations"]["delivered"] == results["destinations"]["events"]
    # A link writes the anonymous id's profile once, however many aggregates it has (issue 13).
    assert results["people"]["link"]["extra_writes_per_link"] == 1.0
    assert results["people"]["deletion"]["steps"] >= 1
    # The simulation stores and aggregates every event it sends, through every shard.
    simulated = results["scale"]["runs"]["1k"]
    assert (simulated["stored_events"], simulated["stuck_shards"]) == (1_000, 0)
    # A day over, its summary reads the same items at 4 shards as at 4,000 (the rollups folded).
    figures = results["figures"]
    assert figures["scale.summary_items_read.4_shards"] == figures["scale.summary_items_read.4000_shards"]
    costs = results["cost"]["single"]
    assert costs["cost_per_million_usd"] == pytest.approx(
        sum(costs["usd_per_million_events"].values()), abs=1e-3
    )
    # The whole bill: every line adds up, a month is its volume times the total plus the fixed part.
    bill = results["bill"]
    for workload in bill["workloads"].values():
        lines = workload["usd_per_million_events"]
        assert {"storage", "point_in_time_recovery", "access_logs_storage", "metric_log_lines"} <= set(lines)
        assert workload["cost_per_million_total_usd"] == pytest.approx(sum(lines.values()), abs=1e-3)
        for volume in (1, 10, 100):
            month = volume * workload["cost_per_million_total_usd"] + bill["fixed_monthly_total_usd"]
            assert workload["monthly_usd"][f"{volume}M"] == pytest.approx(month, abs=0.02)
    # Payload sizes are measured from what the real libraries sent; every call stored one event.
    payloads = results["cost"]["payloads"]
    assert {"analytics-python", "customerio-python", "rudderstack-python", "widget", "plugin"} <= set(
        payloads
    )
    assert ("analytics.js" in payloads) == bool(CHROMIUM)
    report = (tmp_path / "results.quick.md").read_text()
    assert all(f"`{name}`" in report for name in FIGURES)
