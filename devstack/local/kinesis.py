"""Kinesis Data Streams for DynamoDB on one machine: the events table's changes as that stream
carries them, read from DynamoDB Local's own stream (the lake's Firehose and the destinations' router
both read it on AWS). A function whose event source is the Kinesis stream gets its records in
Lambda's Kinesis shape; each record's sequence number is its DynamoDB stream sequence number, so a
partial batch response names records the local event source mapping knows."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

KINESIS_ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/local-events-changes"


def kinesis_change(record: dict[str, Any], table: str = "EventsTable") -> dict[str, Any]:
    """A DynamoDB Streams record (Lambda's shape) as Kinesis Data Streams for DynamoDB writes it:
    JSON, binary values in base64, the creation time in milliseconds."""
    stream = dict(record["dynamodb"])
    created = stream.pop("ApproximateCreationDateTime", None)
    stream.pop("SequenceNumber", None)
    stream.pop("StreamViewType", None)
    change = {
        "awsRegion": record.get("awsRegion", "us-east-1"),
        "eventID": record.get("eventID"),
        "eventName": record["eventName"],
        "userIdentity": None,
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": {**stream, "ApproximateCreationDateTime": int(float(created or 0) * 1000)},
        "eventSource": "aws:dynamodb",
    }
    plain: dict[str, Any] = json.loads(json.dumps(change, default=_binary))
    return plain


def _binary(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"not JSON: {type(value).__name__}")


def kinesis_record(record: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB Streams record (Lambda's shape) as Lambda hands a Kinesis stream's record over."""
    sequence = str(record["dynamodb"]["SequenceNumber"])
    change = kinesis_change(record)
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key(record),
            "sequenceNumber": sequence,
            "data": base64.b64encode(json.dumps(change).encode()).decode(),
            "approximateArrivalTimestamp": change["dynamodb"]["ApproximateCreationDateTime"] / 1000,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/local",
        "awsRegion": "us-east-1",
        "eventSourceARN": KINESIS_ARN,
    }


def partition_key(record: dict[str, Any]) -> str:
    """The partition key Kinesis Data Streams for DynamoDB gives a change: a digest of its item's key."""
    keys = json.dumps(record["dynamodb"].get("Keys", {}), sort_keys=True, default=_binary)
    return hashlib.md5(keys.encode(), usedforsecurity=False).hexdigest().upper()


def kinesis_invoke(invoke: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """``invoke`` of a function fed by the Kinesis stream: the batch's records in Kinesis' shape."""

    def invoke_kinesis(event: dict[str, Any]) -> Any:
        return invoke({**event, "Records": [kinesis_record(record) for record in event["Records"]]})

    return invoke_kinesis
