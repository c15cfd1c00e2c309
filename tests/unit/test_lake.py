"""The lake's one schema (tracking/lake/schema.py) is what the Glue table, Firehose's prefix and the
local files all use; a stored event's row says what was stored; Firehose's transformation keeps stored
events only; the local writer and the ``events`` view show each event once."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from devstack.local.lake import LocalFirehose, firehose_event
from devstack.local.lake_sql import run_sql
from devstack.local.template import load_template
from tests.conftest import sample_event
from tests.helpers import shop_event
from tracking.lake.schema import (
    COLUMNS,
    DUCKDB_TYPES,
    PARTITIONS,
    RAW_TABLE,
    VIEW,
    athena_view,
    athena_view_sql,
    lake_row,
    partition_keys,
)
from tracking.lake.transform import transform
from tracking.query.lake import LakeQuestions
from tracking.storage.lake_engines import DuckDbLake, duckdb_connect
from tracking.storage.lake_erasers import LocalLakeEraser

NOW = 1_764_016_799_000


event = shop_event


def test_the_glue_table_is_rendered_from_the_lakes_column_list() -> None:
    resources = load_template()["Resources"]
    table = resources["LakeEventsTable"]["Properties"]["TableInput"]
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == list(COLUMNS)
    assert [(c["Name"], c["Type"]) for c in table["PartitionKeys"]] == list(PARTITIONS)
    parameters = table["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.plugin_id.type"] == "injected"  # a query must name its plugin
    assert parameters["projection.day.type"] == "date"
    template = parameters["storage.location.template"]["Fn::Sub"]
    assert template.endswith("/events/plugin_id=${!plugin_id}/day=${!day}/")
    # Firehose writes where the table reads, with the partition keys the transformation returns
    s3 = resources["LakeDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    names = [name for name, _ in PARTITIONS]
    assert s3["Prefix"] == "events/" + "".join(f"{n}=!{{partitionKeyFromLambda:{n}}}/" for n in names)
    assert set(partition_keys(event())) == set(names)


def test_athenas_view_events_is_rendered_from_the_same_list_and_reads_the_files_table() -> None:
    resources = load_template()["Resources"]
    view = resources["LakeEventsView"]["Properties"]["TableInput"]
    assert view["Name"] == VIEW
    assert view["TableType"] == "VIRTUAL_VIEW"
    assert resources["LakeEventsTable"]["Properties"]["TableInput"]["Name"] == RAW_TABLE
    head, encoded, tail = view["ViewOriginalText"]["Fn::Join"][1]
    assert (head, tail) == ("/* Presto View: ", " */")
    definition = json.loads(encoded["Fn::Base64"]["Fn::Sub"].replace("${LakeDatabase}", "lake_db"))
    assert definition == athena_view("lake_db")
    names = [name for name, _ in (*COLUMNS, *PARTITIONS)]
    assert [c["name"] for c in definition["columns"]] == names
    assert [(c["Name"], c["Type"]) for c in view["StorageDescriptor"]["Columns"]] == [*COLUMNS, *PARTITIONS]
    # A delivery's repeat is the same row again: the view keeps one of each.
    assert definition["originalSql"].startswith("SELECT DISTINCT ")
    assert definition["originalSql"].endswith(f" FROM {RAW_TABLE}")


def test_the_lake_keeps_no_event_longer_than_the_access_export_can_show_it() -> None:
    """The right of access reads the events table: by default the lake's lifecycle removes a file no
    later than DynamoDB's TTL removes its events, so an export shows all that is kept of a person."""
    parameters = load_template()["Parameters"]
    assert parameters["LakeRetentionDays"]["Default"] <= parameters["RetentionDays"]["Default"]


def test_the_views_sql_removes_a_delivery_repeat_and_nothing_else(tmp_path: Path) -> None:
    """The view's SQL, run by DuckDB over a table with a repeated row and two distinct events that
    differ in one column only: the repeat goes, both events stay."""
    connection = duckdb_connect()
    columns = ", ".join(f"NULL::{DUCKDB_TYPES[kind]} AS {name}" for name, kind in (*COLUMNS, *PARTITIONS))
    connection.execute(f"CREATE TABLE {RAW_TABLE} AS SELECT {columns} WHERE false")
    names = [name for name, _ in (*COLUMNS, *PARTITIONS)]
    place = ", ".join("?" for _ in names)
    row = dict.fromkeys(names) | {"event_id": "m:1", "plugin_id": "shop", "day": "2026-11-24", "name": "a"}
    for values in (row, row, row | {"event_id": "m:2"}):
        connection.execute(f"INSERT INTO {RAW_TABLE} VALUES ({place})", [values[n] for n in names])
    seen = connection.execute(
        f"SELECT event_id FROM ({athena_view_sql()}) WHERE plugin_id = 'shop' ORDER BY 1"
    ).fetchall()
    assert seen == [("m:1",), ("m:2",)]


def test_a_rows_columns_are_the_schemas_and_say_what_was_stored() -> None:
    row = lake_row(
        event(
            kind="page",
            key="page",
            value=Decimal("4.50"),  # a stored number comes back a Decimal
            properties={"popup_version": "b", "url": "https://x.test/p?utm_source=ignored"},
            context={
                "ip": "203.0.113.7",
                "page": {"url": "https://shop.test/a?utm_source=news", "referrer": "https://ref.test/"},
                "campaign": {"source": "newsletter", "medium": "email", "name": "winter"},
            },
            anonymous_id="anon-1",
        )
    )
    assert list(row) == [name for name, _ in COLUMNS]
    assert row["type"] == "page"
    assert row["value"] == "4.50"
    assert json.loads(row["properties"])["popup_version"] == "b"
    assert (row["url"], row["referrer"], row["ip"]) == (
        "https://shop.test/a?utm_source=news",
        "https://ref.test/",
        "203.0.113.7",
    )
    # context.campaign first, as the contract says
    assert (row["utm_source"], row["utm_medium"], row["utm_campaign"]) == ("newsletter", "email", "winter")
    assert row["bot"] is False


def test_without_a_campaign_the_utm_parameters_of_the_pages_url_are_used() -> None:
    row = lake_row(
        event(
            dialect="widget",
            value=True,
            properties={"url": "https://bot.test/?utm_source=google&utm_campaign=spring"},
            context={"referer": "https://google.test/"},
        )
    )
    assert (row["utm_source"], row["utm_medium"], row["utm_campaign"]) == ("google", None, "spring")
    assert (row["value"], row["referrer"]) == ("true", "https://google.test/")


def change(name: str, image: dict[str, Any] | None) -> dict[str, Any]:
    record = {"eventID": name, "eventName": name, "dynamodb": {"ApproximateCreationDateTime": 1}}
    if image is not None:
        record["dynamodb"]["NewImage"] = image
    return record


def test_firehose_gets_a_row_for_each_stored_event_and_nothing_else() -> None:
    stored = sample_event("aggregate-stream")["Records"][0]
    modified = {**stored, "eventID": "m", "eventName": "MODIFY"}
    rejected = change("INSERT", {"pk": {"S": "r"}, "sk": {"S": "1"}, "kind": {"S": "rejected"}})
    event = firehose_event([stored, modified, rejected])
    event["records"].append({"recordId": "garbage", "data": base64.b64encode(b"{not json").decode()})
    results = transform(event)["records"]
    assert [r["result"] for r in results] == ["Ok", "Dropped", "Dropped", "ProcessingFailed"]
    row = json.loads(base64.b64decode(results[0]["data"]))
    assert row["event_id"] == stored["dynamodb"]["NewImage"]["sk"]["S"]
    assert row["event_time"] == int(stored["dynamodb"]["NewImage"]["event_time"]["N"])


def test_a_batch_delivered_twice_and_an_event_in_two_batches_are_read_once(tmp_path: Path) -> None:
    records = sample_event("aggregate-stream")["Records"]
    firehose = LocalFirehose(transform, tmp_path)
    firehose.deliver({"Records": records})
    firehose.deliver({"Records": records})  # a redelivery: the same files, written again
    firehose.deliver({"Records": records[:2]})  # a batch cut differently: other files, same events
    files = sorted(p.relative_to(tmp_path).parts[:3] for p in tmp_path.rglob("*.parquet"))
    assert len(files) == 3  # two partitions of the first batch, one of the second
    assert run_sql(tmp_path, "SELECT count(*), count(DISTINCT event_id) FROM events")[1] == [(5, 5)]
    _, rows = run_sql(
        tmp_path, "SELECT plugin_id, count(*) FROM events GROUP BY plugin_id ORDER BY plugin_id"
    )
    assert rows == [("demo-bot", 2), ("demo-plugin", 3)]
    assert run_sql(tmp_path / "empty", "SELECT count(*) FROM events")[1] == [(0,)]


def test_a_plugin_id_that_looks_like_a_path_stays_inside_its_own_partition(tmp_path: Path) -> None:
    hostile = event(plugin_id="../../etc", event_id="m:x")
    assert partition_keys(hostile)["plugin_id"] == "%2E%2E%2F%2E%2E%2Fetc"
    assert partition_keys(event(plugin_id="demo-bot_1"))["plugin_id"] == "demo-bot_1"  # plain ids as they are
    record = sample_event("aggregate-stream")["Records"][0]
    image = record["dynamodb"]["NewImage"]
    record = {
        **record,
        "dynamodb": {**record["dynamodb"], "NewImage": {**image, "plugin_id": {"S": "../../etc"}}},
    }
    LocalFirehose(transform, tmp_path / "lake").deliver({"Records": [record]})
    (written,) = list(tmp_path.rglob("*.parquet"))
    assert written.is_relative_to(tmp_path / "lake" / "events" / "plugin_id=%2E%2E%2F%2E%2E%2Fetc")
    # and the routes find it under the plugin's own id
    found = breakdown_by_type(tmp_path / "lake", "../../etc", record["dynamodb"]["NewImage"]["key"]["S"])
    assert found == [{"value": "track", "events": 1, "users": 1}]
    # and a deletion finds it there, and nowhere else
    user = record["dynamodb"]["NewImage"]["user_id"]["S"]
    assert LocalLakeEraser(tmp_path / "lake").holding("../../etc", [user]) == [str(written)]
    assert LocalLakeEraser(tmp_path / "lake").holding("etc", [user]) == []


def breakdown_by_type(lake: Path, plugin_id: str, name: str) -> list[dict[str, Any]]:
    params = {"event": name, "by": "type", "from": "2025-11-01", "to": "2025-11-30"}
    rows: list[dict[str, Any]] = LakeQuestions(DuckDbLake(lake)).breakdown(plugin_id, params)[1]["rows"]
    return rows


def test_batches_whose_event_ids_repeat_after_a_restart_never_overwrite_each_other(tmp_path: Path) -> None:
    # DynamoDB Local numbers eventIDs afresh when it restarts: only the sequence numbers tell two
    # batches apart
    records = sample_event("aggregate-stream")["Records"][:3]
    later = [
        {
            **record,
            "dynamodb": {
                **record["dynamodb"],
                "SequenceNumber": str(int(record["dynamodb"]["SequenceNumber"]) + 1_000),
                "NewImage": {**record["dynamodb"]["NewImage"], "sk": {"S": f"g:after-restart-{n}"}},
            },
        }
        for n, record in enumerate(records)
    ]
    firehose = LocalFirehose(transform, tmp_path)
    firehose.deliver({"Records": records})
    firehose.deliver({"Records": later})
    assert len(list(tmp_path.rglob("*.parquet"))) == 2
    assert run_sql(tmp_path, "SELECT count(*) FROM events")[1] == [(6,)]
