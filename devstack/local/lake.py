"""The lake on one machine: what Kinesis Data Streams for DynamoDB and Firehose do on AWS, with the
same function and the same layout (template.yaml, "The lake").

A poller reads the events table's stream with its own checkpoint and, at most ``LAKE_FLUSH_SECONDS``
after a batch's first change, hands the batch to ``LakeFunction`` as Firehose's transformation event
(each change as Kinesis Data Streams for DynamoDB writes it). The rows the function returns are
written as Parquet (DuckDB) under ``<lake>/events/plugin_id=<p>/day=<d>/``, one file per partition
and batch, named by the batch; the records it could not read go under ``<lake>/errors/``, as Firehose
keeps them. A file is written aside and renamed into place, and the stream position moves only once
every file of the batch is in place: a stack stopped in between writes the same files again. Readers
remove what a delivery repeated by ``event_id`` (the ``events`` view, ``devstack/local/lake_sql.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack.local.kinesis import KINESIS_ARN, kinesis_change
from devstack.local.poller import StreamPoller
from devstack.local.template import StreamMapping
from tracking.lake.schema import COLUMNS, DUCKDB_TYPES
from tracking.storage.lake_engines import duckdb_connect

LAKE_FUNCTION = "LakeFunction"
FIREHOSE_ARN = "arn:aws:firehose:us-east-1:000000000000:deliverystream/local-lake"
# GetRecords' largest page: a batch is what one read of the interval gathered.
BATCH_RECORDS = 1000


def lake_mapping(flush_seconds: float) -> StreamMapping:
    """The stream as the lake reads it: every change, batches of up to ``BATCH_RECORDS`` gathered for
    ``flush_seconds`` at most, retried until written (Firehose retries too)."""
    return StreamMapping(
        function=LAKE_FUNCTION,
        table="EventsTable",
        batch_size=BATCH_RECORDS,
        batching_window_s=max(0, round(flush_seconds)),
        starting_position="TRIM_HORIZON",
    )


def firehose_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Firehose's transformation event for these stream records (a Kinesis data stream its source)."""
    return {
        "invocationId": hashlib.blake2b(_batch_name(records).encode(), digest_size=8).hexdigest(),
        "deliveryStreamArn": FIREHOSE_ARN,
        "sourceKinesisStreamArn": KINESIS_ARN,
        "region": "us-east-1",
        "records": [
            {
                "recordId": _position(record) or str(index),
                "approximateArrivalTimestamp": int(
                    float(record["dynamodb"].get("ApproximateCreationDateTime", 0)) * 1000
                ),
                "data": base64.b64encode(json.dumps(kinesis_change(record)).encode()).decode(),
            }
            for index, record in enumerate(records)
        ],
    }


def _position(record: dict[str, Any]) -> str:
    """Where a record is in the stream: its stream and sequence number (DynamoDB Local numbers its
    records' ``eventID`` afresh after a restart: only the sequence number names one record)."""
    sequence = record["dynamodb"].get("SequenceNumber") or record.get("eventID")
    return f"{record.get('eventSourceARN', '')}#{sequence}"


def _batch_name(records: list[dict[str, Any]]) -> str:
    """The same name for the same batch, another for any other: a redelivery writes the same files,
    and no batch overwrites another's."""
    batch = f"{_position(records[0])}-{_position(records[-1])}-{len(records)}"
    return hashlib.blake2b(batch.encode(), digest_size=10).hexdigest()


class LocalFirehose:
    """Firehose's delivery for one batch: transform, then write each partition's rows as Parquet."""

    def __init__(self, transform: Callable[[dict[str, Any]], Any], lake_dir: Path) -> None:
        self._transform = transform
        self._lake = lake_dir
        self.rows_written = 0

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        records = event["Records"]
        if not records:
            return {}
        name = _batch_name(records)
        answer = self._transform(firehose_event(records))
        partitions: dict[tuple[str, str], list[bytes]] = {}
        failed: list[str] = []
        for result in answer["records"]:
            if result["result"] == "Ok":
                keys = result["metadata"]["partitionKeys"]
                partitions.setdefault((keys["plugin_id"], keys["day"]), []).append(
                    base64.b64decode(result["data"])
                )
            elif result["result"] == "ProcessingFailed":
                failed.append(result["recordId"])
        for (plugin_id, day), rows in partitions.items():
            folder = self._lake / "events" / f"plugin_id={plugin_id}" / f"day={day}"
            if "/" in plugin_id + day or not folder.resolve().is_relative_to(self._lake.resolve()):
                raise ValueError(f"a partition outside the lake: {plugin_id!r} {day!r}")  # never written
            write_parquet(rows, folder / f"{name}.parquet")
            self.rows_written += len(rows)
        if failed:
            folder = self._lake / "errors" / "processing-failed"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.json").write_text(json.dumps({"recordIds": failed}))
        return {}


def write_parquet(rows: list[bytes], path: Path) -> None:
    """The rows (JSON lines, times in epoch ms) as one Parquet file with the lake's columns, written
    aside and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        source = Path(scratch) / "rows.json"
        source.write_bytes(b"".join(rows))
        aside = Path(scratch) / "rows.parquet"
        read_as = {name: "BIGINT" if kind == "timestamp" else DUCKDB_TYPES[kind] for name, kind in COLUMNS}
        select = ", ".join(
            f"epoch_ms({name}) AS {name}" if kind == "timestamp" else name for name, kind in COLUMNS
        )
        # Every name and type from the schema, the paths quoted: nothing a client sent is in it.
        statement = (
            f"COPY (SELECT {select} FROM read_json("  # noqa: S608
            f"'{_quoted(source)}', format = 'newline_delimited', "
            f"columns = {_struct(read_as)})) TO '{_quoted(aside)}' (FORMAT parquet, COMPRESSION snappy)"
        )
        connection = duckdb_connect()
        try:
            connection.execute(statement)
        finally:
            connection.close()
        os.replace(aside, path)


def _struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def start_lake(
    streams_client: Any,
    dynamodb_client: Any,
    transform: Callable[[dict[str, Any]], Any],
    *,
    lake_dir: Path,
    state_dir: Path,
    stop: threading.Event,
    flush_seconds: float,
) -> LocalFirehose:
    """Start the lake's poller; the delivery it feeds (for its counters)."""
    firehose = LocalFirehose(transform, lake_dir)
    StreamPoller(
        streams_client,
        dynamodb_client,
        lake_mapping(flush_seconds),
        firehose.deliver,
        state_dir=state_dir,
        stop=stop,
    ).start()
    return firehose
