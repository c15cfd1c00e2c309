"""The whole bill: what the cost model's workloads measured (devstack/bench/cost.py), plus what a
deployed stack pays besides requests and write units: storage and point-in-time recovery for as long
as events are kept, log storage, the fixed monthly parts (WAF, alarms, custom metrics, the admin
key's secret, the alarm topic's KMS key), Lambda init (billed since August 2025), and the per-IP
limiter when many warm containers serve one IP. Per million events, then per month at 1, 10 and 100
million events, next to PostHog's list price; and the levers an operator has, with their price.

Every price is a us-east-1 list price; every size, write and duration is measured by ``make bench``.
Assumptions are named where they are made (``ASSUMPTIONS``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devstack.local.template import Template
from tracking.observability import outcome_metric

MONTH_DAYS = 30.4375
GB = 1e9

PRICES = {
    "api_gateway_rest_request": 3.50,  # per million (first 333 million a month)
    "api_gateway_http_request": 1.00,  # per million (first 300 million a month)
    "waf_request": 0.60,  # per million
    "waf_web_acl_month": 5.00,
    "waf_rule_month": 1.00,
    "lambda_request": 0.20,  # per million
    "lambda_arm64_gb_second": 13.3334,  # per million GB-seconds ($0.0000133334 per GB-second)
    "dynamodb_write_unit": 0.625,  # per million
    "dynamodb_read_unit": 0.125,  # per million
    "dynamodb_storage_gb_month": 0.25,
    "dynamodb_pitr_gb_month": 0.20,
    "cloudwatch_logs_ingested_gb": 0.50,
    "cloudwatch_logs_stored_gb_month": 0.03,
    "cloudwatch_alarm_month": 0.10,  # standard resolution
    "cloudwatch_custom_metric_month": 0.30,  # first 10,000 metrics
    "secrets_manager_secret_month": 0.40,
    "secrets_manager_per_10k_calls": 0.05,
    "kms_key_month": 1.00,
    # The lake (issue 24)
    "dynamodb_kinesis_cdc_unit": 0.10,  # per million change data capture units (1 KB of item change)
    "kinesis_on_demand_stream_hour": 0.04,
    "kinesis_on_demand_gb_in": 0.08,
    "kinesis_on_demand_gb_out": 0.04,
    "firehose_ingest_gb": 0.029,  # billed in 5 KB increments per record (charged so: an upper bound)
    "firehose_format_conversion_gb": 0.018,
    "firehose_dynamic_partitioning_gb": 0.020,
    "firehose_dynamic_partitioning_per_1000_objects": 0.005,
    "s3_standard_gb_month": 0.023,
    "athena_tb_scanned": 5.00,  # per question: usage, not per event
    # Events out (issue 25)
    "sqs_request": 0.40,  # per million standard-queue requests (each 64 KB of payload a request)
}
FIREHOSE_RECORD_BYTES = 5_000  # each record billed as at least 5 KB
LAKE_FILE_EVENTS = 1_000  # events per Parquet object at a busy plugin (Firehose's 64 MB or its interval)
STREAM_PARTITION_BYTES = 10 * GB  # a DynamoDB partition holds up to 10 GB; a stream shard per partition

# Custom metrics the functions emit through Powertools (EMF): the ingest function's outcome metrics
# (tracking/observability.py) and the aggregate function's two; each bills as one metric a month
# once it has been emitted that month (an upper bound: a metric never emitted costs nothing).
CUSTOM_METRICS = (
    *sorted({name for status in (400, 429, 500, 503) if (name := outcome_metric(status))}),
    "StreamRecords",  # functions/aggregate/app.py
    "StreamRecordsRetried",
)

# Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU. Init is import work,
# so its time at 512 MB is the bench's CPU time scaled by 1769/512.
INIT_CPU_SCALE = round(1769 / 512, 3)
# Warm environments are recycled and idle ones reclaimed; a function whose traffic comes in spurts
# pays at most about one cold start per 5 idle minutes per environment it keeps.
COLD_STARTS_PER_FUNCTION_MONTH = int(MONTH_DAYS * 24 * 12)
# GetSecretValue: once per 5 minutes per warm query environment, at most (ADMIN_KEY_MAX_AGE).
SECRET_READS_PER_MONTH = int(MONTH_DAYS * 24 * 12)
ASSUMPTIONS = {
    "init_cpu_scale_512mb": INIT_CPU_SCALE,
    "cold_starts_per_function_month": COLD_STARTS_PER_FUNCTION_MONTH,
    "secret_reads_per_month": SECRET_READS_PER_MONTH,
    # Aggregates have no TTL (a user's row outlives their events); charged here for the retention
    # period like the events, a lower bound for users who never come back.
    "aggregates_kept_days": "RetentionDays",
}

# PostHog product analytics, per event after the first million free a month (list price, tiers as
# published: https://posthog.com/pricing, summarised at https://flexprice.io/blog/posthog-pricing-guide).
POSTHOG_TIERS = (
    (1_000_000, 0.0),
    (2_000_000, 0.0000500),
    (15_000_000, 0.0000343),
    (50_000_000, 0.0000295),
    (100_000_000, 0.0000218),
    (250_000_000, 0.0000150),
)
VOLUMES = (1, 10, 100)  # millions of events a month


def posthog_monthly(events: int) -> float:
    total, lower = 0.0, 0
    for upper, price in POSTHOG_TIERS:
        if events > lower:
            total += (min(events, upper) - lower) * price
        lower = upper
    return total


def storage_lines(
    event_bytes: float, aggregate_bytes: float, retention_days: int, *, pitr: bool = True
) -> dict[str, float]:
    """Per million events: keeping each event's item (and its share of the aggregates table) for
    ``retention_days``, with point-in-time recovery billed on the same bytes."""
    months = retention_days / MONTH_DAYS
    stored = 1e6 * (event_bytes + aggregate_bytes) / GB * months
    lines = {"storage": stored * PRICES["dynamodb_storage_gb_month"]}
    lines["point_in_time_recovery"] = stored * PRICES["dynamodb_pitr_gb_month"] if pitr else 0.0
    return lines


def template_counts(template: Template) -> dict[str, int]:
    acl = template.of_type("AWS::WAFv2::WebACL")["ApiWebAcl"]
    return {
        "alarms": len(template.of_type("AWS::CloudWatch::Alarm")),
        "waf_rules": len(acl["Properties"]["Rules"]),
        "functions": len(template.of_type("AWS::Serverless::Function")),
        "retention_days": int(template.parameters["RetentionDays"]),
        "log_retention_days": int(template.parameters["LogRetentionDays"]),
        "point_in_time_recovery": int(template.parameters["PointInTimeRecovery"] == "true"),
    }


def init_monthly(cold_start: Mapping[str, Any], memory_gb: float, functions: int) -> float:
    """Lambda init, billed like duration: the bound of ASSUMPTIONS for every function, at the
    slowest measured init (CPU ms in this repo's layout, scaled to 512 MB's share of a vCPU)."""
    slowest_ms = max(float(cold_start[f"{name}_ms"]) for name in ("ingest", "aggregate", "query"))
    seconds = slowest_ms / 1000 * INIT_CPU_SCALE
    starts = COLD_STARTS_PER_FUNCTION_MONTH * functions
    return starts * memory_gb * seconds * PRICES["lambda_arm64_gb_second"] / 1e6  # no request charge


def fixed_monthly(template: Template, cold_start: Mapping[str, Any], memory_gb: float) -> dict[str, float]:
    counts = template_counts(template)
    own_kms_key = bool(template.of_type("AWS::KMS::Key"))
    return {
        "waf_web_acl": PRICES["waf_web_acl_month"],
        "waf_rules": counts["waf_rules"] * PRICES["waf_rule_month"],
        "alarms": counts["alarms"] * PRICES["cloudwatch_alarm_month"],
        "custom_metrics": len(CUSTOM_METRICS) * PRICES["cloudwatch_custom_metric_month"],
        "admin_key_secret": PRICES["secrets_manager_secret_month"]
        + SECRET_READS_PER_MONTH / 1e4 * PRICES["secrets_manager_per_10k_calls"],
        "alarm_topic_kms_key": PRICES["kms_key_month"] if own_kms_key else 0.0,
        "lambda_init": init_monthly(cold_start, memory_gb, counts["functions"]),
    }


def whole_bill(results: Mapping[str, Any], template: Template) -> dict[str, Any]:
    """Per workload: every per-million line and the total; the fixed monthly parts; the month at
    1, 10 and 100 million events next to PostHog; and the levers."""
    counts = template_counts(template)
    memory_gb = template.functions()["IngestFunction"].memory_mb / 1024
    fixed = fixed_monthly(template, results["cold_start"], memory_gb)
    fixed_total = sum(fixed.values())
    workloads: dict[str, Any] = {}
    for name, measured in results["cost"].items():
        if not isinstance(measured, Mapping) or "usd_per_million_events" not in measured:
            continue
        lines = dict(measured["usd_per_million_events"])
        lines.update(
            storage_lines(
                measured["stored_bytes_per_event"],
                measured["aggregate_bytes_per_event"],
                counts["retention_days"],
            )
        )
        # Access log lines are kept LogRetentionDays; the aggregate function's metric line per batch.
        log_gb = measured["requests_per_event"] * 1e6 * results["cost"]["access_log_bytes_per_request"] / GB
        lines["access_logs_storage"] = (
            log_gb * counts["log_retention_days"] / MONTH_DAYS * PRICES["cloudwatch_logs_stored_gb_month"]
        )
        lines["metric_log_lines"] = (
            measured["aggregate_invocations_per_event"]
            * 1e6
            * results["cost"]["metric_line_bytes"]
            / GB
            * PRICES["cloudwatch_logs_ingested_gb"]
        )
        total = sum(lines.values())
        workloads[name] = {
            "usd_per_million_events": {key: round(value, 4) for key, value in lines.items()},
            "cost_per_million_total_usd": round(total, 4),
            "monthly_usd": {f"{volume}M": round(volume * total + fixed_total, 2) for volume in VOLUMES},
        }
    single = workloads["single"]["usd_per_million_events"]
    return {
        "assumptions": ASSUMPTIONS,
        "fixed_monthly_usd": {key: round(value, 4) for key, value in fixed.items()},
        "fixed_monthly_total_usd": round(fixed_total, 2),
        "workloads": workloads,
        "posthog_monthly_usd": {
            f"{volume}M": round(posthog_monthly(volume * 1_000_000), 2) for volume in VOLUMES
        },
        "levers": levers(results, counts, single),
        "lake": lake_bill(results, template, workloads) if "lake" in results else {},
        "destinations": (
            destinations_bill(
                results["lake"]["write"],
                template.functions()["DeliverFunction"].memory_mb / 1024,
                deliver_batch_size(template),
            )
            if "lake" in results
            else {}
        ),
    }


def lake_lines(measured: Mapping[str, Any], lake: Mapping[str, Any], lake_days: int) -> dict[str, float]:
    """Per million events: the lake's share (the table's changes through Kinesis and Firehose into
    Parquet kept ``lake_days``). Every change of the events table is a record (claims included)."""
    # The events table's write units per event: one change record per KB written (claims included).
    changes = (
        measured["ingest_write_units_by_table"].get("EventsTable", measured["events"]) / measured["events"]
    )
    change_gb = 1e6 * changes * lake["change_json_bytes"] / GB
    row_gb = 1e6 * lake["row_json_bytes"] / GB
    return {
        "lake_change_capture": changes * PRICES["dynamodb_kinesis_cdc_unit"],
        "lake_kinesis": change_gb * (PRICES["kinesis_on_demand_gb_in"] + PRICES["kinesis_on_demand_gb_out"]),
        "lake_firehose": 1e6 * changes * FIREHOSE_RECORD_BYTES / GB * PRICES["firehose_ingest_gb"]
        + row_gb * (PRICES["firehose_format_conversion_gb"] + PRICES["firehose_dynamic_partitioning_gb"])
        + 1e6 / LAKE_FILE_EVENTS / 1000 * PRICES["firehose_dynamic_partitioning_per_1000_objects"],
        "lake_function": 1e6
        * lake["seconds"]
        / lake["events"]
        * 0.5
        * PRICES["lambda_arm64_gb_second"]
        / 1e6,
        "lake_storage": 1e6
        * lake["parquet_bytes_per_event"]
        / GB
        * lake_days
        / MONTH_DAYS
        * PRICES["s3_standard_gb_month"],
    }


def stream_shards(event_bytes: float, days: int, events_per_s: float) -> int:
    """The events table's stream shards after ``days`` at ``events_per_s`` (one per partition; a
    partition per 10 GB of items, or per 1,000 write units a second)."""
    stored = event_bytes * events_per_s * 86_400 * days
    return max(1, int(-(-stored // STREAM_PARTITION_BYTES)), int(-(-events_per_s // 1_000)))


def lake_bill(results: Mapping[str, Any], template: Template, workloads: Mapping[str, Any]) -> dict[str, Any]:
    """What the lake adds, per workload, and the hot table's retention weighed against it: the whole
    bill with events kept 400 days in DynamoDB (the lake beside them), or 30 days (history in the lake
    alone), and the stream's shard count at 1,000 events a second after each."""
    lake = results["lake"]["write"]
    lake_days = int(template.parameters["LakeRetentionDays"])
    hot_days = int(template.parameters["RetentionDays"])
    found: dict[str, Any] = {
        "fixed_monthly_usd": round(MONTH_DAYS * 24 * PRICES["kinesis_on_demand_stream_hour"], 2),
        "assumptions": {
            "firehose_record_bytes_billed": FIREHOSE_RECORD_BYTES,
            "events_per_lake_object": LAKE_FILE_EVENTS,
            "parquet_bytes_per_event": lake["parquet_bytes_per_event"],
            "lake_retention_days": lake_days,
        },
        "workloads": {},
    }
    for name, workload in workloads.items():
        measured = results["cost"][name]
        lines = lake_lines(measured, lake, lake_days)
        base = workload["cost_per_million_total_usd"]
        hot = sum(
            storage_lines(
                measured["stored_bytes_per_event"], measured["aggregate_bytes_per_event"], hot_days
            ).values()
        )
        short = sum(
            storage_lines(
                measured["stored_bytes_per_event"], measured["aggregate_bytes_per_event"], 30
            ).values()
        )
        found["workloads"][name] = {
            "lake_usd_per_million_events": {key: round(value, 4) for key, value in lines.items()},
            f"cost_per_million_total_usd_with_lake_{hot_days}d_hot": round(base + sum(lines.values()), 4),
            "cost_per_million_total_usd_with_lake_30d_hot": round(
                base - hot + short + sum(lines.values()), 4
            ),
            f"stream_shards_at_1k_per_s_{hot_days}d": stream_shards(
                measured["stored_bytes_per_event"], hot_days, 1_000
            ),
            "stream_shards_at_1k_per_s_30d": stream_shards(measured["stored_bytes_per_event"], 30, 1_000),
        }
    return found


def levers(
    results: Mapping[str, Any], counts: Mapping[str, int], single: Mapping[str, float]
) -> dict[str, Any]:
    """What each operator choice changes, per million single calls (and per month where fixed)."""
    measured = results["cost"]["single"]
    event_bytes, aggregate_bytes = measured["stored_bytes_per_event"], measured["aggregate_bytes_per_event"]
    retention = {
        f"{days}_days": round(sum(storage_lines(event_bytes, aggregate_bytes, days).values()), 4)
        for days in (30, 90, 180, 400, 730)
    }
    without_pitr = storage_lines(event_bytes, aggregate_bytes, counts["retention_days"], pitr=False)
    return {
        "retention_storage_and_pitr_per_million": retention,
        "pitr_off_saves_per_million": round(
            single["point_in_time_recovery"] - without_pitr["point_in_time_recovery"], 4
        ),
        # An HTTP API costs $1.00 a million instead of $3.50 and cannot have a WAF web ACL: the per-IP
        # limit is then the ingest function's own (a write per 8-16 requests, already counted).
        "http_api_instead_of_rest_saves_per_million": round(
            PRICES["api_gateway_rest_request"] - PRICES["api_gateway_http_request"] + PRICES["waf_request"], 4
        ),
        "http_api_instead_of_rest_saves_monthly": round(
            PRICES["waf_web_acl_month"] + counts["waf_rules"] * PRICES["waf_rule_month"], 2
        ),
        "batching_20_calls_saves_per_million": round(
            results["cost"]["single"]["cost_per_million_usd"]
            - results["cost"]["batched"]["cost_per_million_usd"],
            4,
        ),
    }


# Events out (issue 25): per message (one stored event for one destination).
SQS_REQUESTS_PER_MESSAGE = 0.3  # SendMessageBatch, ReceiveMessage and DeleteMessageBatch, 10 a request
ROUTE_RECORDS_PER_INVOCATION = 100
ROUTE_SECONDS_PER_INVOCATION = 0.05
RECEIVER_LATENCY_S = 0.1  # a webhook's answer: a batch's messages are sent side by side, so one latency
DELIVER_OVERHEAD_S_PER_MESSAGE = 0.005  # its claim, and its share of the mark, counters and reads
# Each message's claim and mark (a write unit each), and the counters once per destination and batch.
# The forgotten-ids read asks for each message's ids (a user id and an anonymous id at most), and
# DynamoDB bills a key that is not there as an eventually consistent read of the least size (0.5).
FORGOTTEN_READ_UNITS_PER_MESSAGE = 2 * 0.5


def deliver_batch_size(template: Template) -> int:
    """The deliver function's batch size (its SQS event source in template.yaml)."""
    from devstack.local.esm import queue_mappings  # noqa: PLC0415 - the local stack's reader

    return next(m.batch_size for m in queue_mappings(template) if m.function == "DeliverFunction")


def destinations_bill(lake: Mapping[str, Any], memory_gb: float, batch: int) -> dict[str, Any]:
    """What one webhook destination adds per million messages delivered, line by line (docs/COST.md,
    "Events out"): the queue's requests, the route and deliver functions, the deliveries table, and
    the router's read of the change stream."""
    gb_seconds = 1e6 * memory_gb * PRICES["lambda_arm64_gb_second"] / 1e6
    route_invocations = 1e6 / ROUTE_RECORDS_PER_INVOCATION
    deliver_invocations = 1e6 / batch
    deliver_seconds = RECEIVER_LATENCY_S + DELIVER_OVERHEAD_S_PER_MESSAGE * batch
    lines = {
        "sqs_requests": SQS_REQUESTS_PER_MESSAGE * PRICES["sqs_request"],
        "route_function": route_invocations
        * (PRICES["lambda_request"] / 1e6 + ROUTE_SECONDS_PER_INVOCATION * gb_seconds / 1e6),
        "route_stream_read": 1e6 * lake["change_json_bytes"] / GB * PRICES["kinesis_on_demand_gb_out"],
        "deliver_function": deliver_invocations
        * (PRICES["lambda_request"] / 1e6 + deliver_seconds * gb_seconds / 1e6),
        "deliveries_table": (2 + 1 / batch) * PRICES["dynamodb_write_unit"]
        + FORGOTTEN_READ_UNITS_PER_MESSAGE * PRICES["dynamodb_read_unit"],
    }
    return {
        "usd_per_million_delivered": {name: round(value, 4) for name, value in lines.items()},
        "cost_per_million_delivered_usd": round(sum(lines.values()), 4),
        "assumptions": {
            "receiver_latency_s": RECEIVER_LATENCY_S,
            "messages_per_deliver_invocation": batch,
            "sqs_requests_per_message": SQS_REQUESTS_PER_MESSAGE,
        },
    }
