"""The local lake's figures (issue 24): how fast the local Firehose writes stored events to Parquet
(``lake.local_write_events_per_s``: stream records through the lake function and DuckDB, as
``make run`` writes them), and how long breakdown and retention take over one plugin's million
events of 30 days (``lake.query_ms.*``, target under 1 s), through the query function's own engine.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from devstack.bench.stats import spread
from devstack.local.kinesis import kinesis_change
from devstack.local.lake import LocalFirehose, firehose_event
from tracking.lake.questions import Breakdown, Retention, breakdown_of, retention_of
from tracking.lake.schema import COLUMNS
from tracking.lake.transform import transform
from tracking.storage.dynamo import to_item
from tracking.storage.lake_engines import DuckDbLake, duckdb_connection

PLUGIN = "bench-plugin"
FIRST_DAY = "2026-11-01"
DAYS = 30


def _record(n: int) -> dict[str, Any]:
    """A stream record of one stored Segment track call (as the events table's stream hands it over)."""
    at = 1_761_955_200_000 + n * 2_500  # 2026-11-01, one event every 2.5 s
    image = to_item(
        {
            "pk": f"{PLUGIN}\x1fu-{n % 5_000}",
            "sk": f"m:bench-{n}",
            "plugin_id": PLUGIN,
            "user_id": f"u-{n % 5_000}",
            "key": "Product Viewed",
            "kind": "track",
            "dialect": "segment",
            "event_time": at,
            "received_at": at,
            "properties": f'{{"popup_version":"v{n % 7}","price":{n % 90}}}',
            "context": '{"ip":"192.0.2.1","page":{"url":"https://shop.test/?utm_source=news"}}',
        }
    )
    return {
        "eventID": f"bench-{n}",
        "eventName": "INSERT",
        "dynamodb": {"ApproximateCreationDateTime": at / 1000, "NewImage": image, "SequenceNumber": str(n)},
    }


def write_rate(events: int, batch: int = 1_000) -> dict[str, Any]:
    """Events per second through the local Firehose: transform (in process) and Parquet writes."""
    records = [_record(n) for n in range(events)]
    with tempfile.TemporaryDirectory() as folder:
        firehose = LocalFirehose(transform, Path(folder))
        started = time.perf_counter()
        for start in range(0, events, batch):
            firehose.deliver({"Records": records[start : start + batch]})
        seconds = time.perf_counter() - started
        assert firehose.rows_written == events, "every record becomes a row"
        parquet = sum(path.stat().st_size for path in Path(folder).rglob("*.parquet"))
    row = len(json_row(records[0]))
    return {
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
        "parquet_bytes_per_event": round(parquet / events, 1),  # files of one batch (1,000 events)
        "row_json_bytes": row,  # what Firehose converts, per stored event
        "change_json_bytes": len(json.dumps(kinesis_change(records[0]))),  # what Kinesis carries
    }


def json_row(record: dict[str, Any]) -> bytes:
    """The row the lake function returns for one record, as Firehose receives it."""
    (result,) = transform(firehose_event([record]))["records"]
    return base64.b64decode(result["data"])


def _million(lake: Path, events: int) -> None:
    """``events`` rows of one plugin over 30 days, written by DuckDB in the lake's layout."""
    connection = duckdb_connection(lake / "unused")
    try:
        columns = {
            "event_id": "'m:' || i",
            "dialect": "'segment'",
            "type": "'track'",
            "name": "CASE WHEN i % 10 = 0 THEN 'Order Completed' ELSE 'Product Viewed' END",
            "user_id": "'u-' || (i % 50000)",
            "anonymous_id": "NULL",
            "value": "NULL",
            "properties": """'{"popup_version":"v' || (i % 60) || '","price":' || (i % 90) || '}'""",
            "traits": "'{}'",
            "context": "'{}'",
            "event_time": f"TIMESTAMP '{FIRST_DAY}' + to_milliseconds(i * {DAYS * 86_400_000 // events})",
            "received_at": f"TIMESTAMP '{FIRST_DAY}' + to_milliseconds(i * {DAYS * 86_400_000 // events})",
            "bot": "i % 50 = 0",
            "browser": "CASE WHEN i % 3 = 0 THEN 'Firefox' ELSE 'Chrome' END",
            "os": "NULL",
            "device": "NULL",
            "ip": "NULL",
            "url": "'https://shop.test/'",
            "referrer": "NULL",
            "utm_source": "CASE i % 4 WHEN 0 THEN 'news' WHEN 1 THEN 'ads' ELSE NULL END",
            "utm_medium": "NULL",
            "utm_campaign": "NULL",
        }
        assert list(columns) == [name for name, _ in COLUMNS]
        select = ", ".join(f"{expression} AS {name}" for name, expression in columns.items())
        target = str(lake / "events").replace("'", "''")
        connection.execute(
            f"COPY (SELECT {select}, '{PLUGIN}' AS plugin_id, strftime(event_time, '%Y-%m-%d') AS day "  # noqa: S608
            f"FROM range({events}) AS r(i)) TO '{target}' "
            "(FORMAT parquet, COMPRESSION snappy, PARTITION_BY (plugin_id, day))"
        )
    finally:
        connection.close()


def query_times(events: int, rounds: int) -> dict[str, Any]:
    """Milliseconds a breakdown and a retention take over ``events`` rows, as the query function asks."""
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder)
        _million(lake, events)
        engine = DuckDbLake(lake)
        span = {"from": FIRST_DAY, "to": "2026-11-30"}
        questions: dict[str, Breakdown | Retention] = {
            "breakdown": breakdown_of({**span, "event": "Product Viewed", "by": "properties.popup_version"}),
            "breakdown_column": breakdown_of({**span, "event": "Product Viewed", "by": "utm_source"}),
            "retention": retention_of({**span, "period": "week"}),
        }
        found: dict[str, Any] = {}
        for name, question in questions.items():
            statement = question.statement("duckdb", PLUGIN)
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                rows = engine.run(statement, 0)
                times.append((time.perf_counter() - started) * 1000)
            assert rows, name
            found[name] = spread(times, 1)
    return {"events": events, **found}


def lake_figures(quick: bool) -> dict[str, Any]:
    return {
        "write": write_rate(2_000 if quick else 20_000),
        "query": query_times(100_000 if quick else 1_000_000, 3 if quick else 7),
    }
