"""Firehose's transformation of the events table's changes into lake rows (on AWS: Kinesis Data
Streams for DynamoDB -> Firehose -> this -> Parquet in S3; locally ``devstack/local/lake.py`` hands it
the same records). Each Firehose record holds one change as Kinesis Data Streams for DynamoDB writes
it (JSON, the image in DynamoDB's attribute-value form). A stored event (an INSERT of an event item)
becomes its row, as JSON, with its partition keys; every other change (claims, index items,
rejections, deletion steps, updates and removals) is dropped; a change that cannot be read fails
alone (Firehose keeps it under the error prefix)."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from aws_lambda_powertools.utilities.data_classes import (
    KinesisFirehoseDataTransformationRecord,
    KinesisFirehoseDataTransformationRecordMetadata,
    KinesisFirehoseDataTransformationResponse,
    KinesisFirehoseEvent,
)

from tracking.json_text import dumps_compact
from tracking.lake.schema import lake_row, partition_keys
from tracking.storage.dynamo import from_item
from tracking.storage.events import event_from_item, is_event

logger = logging.getLogger(__name__)


def transform(event: dict[str, Any]) -> dict[str, Any]:
    """The Firehose transformation's answer: one result per record, in order."""
    response = KinesisFirehoseDataTransformationResponse()
    for record in KinesisFirehoseEvent(event).records:
        response.add_record(_transformed(record.record_id, record.data_as_bytes))
    return response.asdict()


def _transformed(record_id: str, data: bytes) -> KinesisFirehoseDataTransformationRecord:
    try:
        change = json.loads(data)
        image = change.get("dynamodb", {}).get("NewImage")
        if change.get("eventName") != "INSERT" or not image or not is_event(from_item(_plain(image))):
            return KinesisFirehoseDataTransformationRecord(record_id=record_id, result="Dropped")
        stored = event_from_item(_plain(image))
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("lake record not readable", extra={"record_id": record_id, "error": repr(exc)})
        return KinesisFirehoseDataTransformationRecord(record_id=record_id, result="ProcessingFailed")
    row = (dumps_compact(lake_row(stored)) + "\n").encode()
    return KinesisFirehoseDataTransformationRecord(
        record_id=record_id,
        data=base64.b64encode(row).decode(),
        metadata=KinesisFirehoseDataTransformationRecordMetadata(partition_keys=partition_keys(stored)),
    )


def _plain(image: dict[str, Any]) -> dict[str, Any]:
    """An image from JSON (binary values as base64 text) in the form botocore hands back (bytes)."""
    return {name: _attribute(value) for name, value in image.items()}


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "L":
        return {"L": [_attribute(element) for element in inner]}
    if kind == "M":
        return {"M": {name: _attribute(element) for name, element in inner.items()}}
    return value
