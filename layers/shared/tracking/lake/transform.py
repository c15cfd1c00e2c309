"""Firehose's transformation of the events table's changes into lake rows (on AWS: Kinesis Data
Streams for DynamoDB -> Firehose -> this -> Parquet in S3; locally ``devstack/local/lake.py`` hands it
the same records). Each Firehose record holds one change as Kinesis Data Streams for DynamoDB writes
it (JSON, the image in DynamoDB's attribute-value form). A stored event (an INSERT of an event item)
becomes its row, as JSON, with its partition keys; every other change (claims, index items,
rejections, deletion steps, updates and removals) is dropped; a change that cannot be read fails
alone (Firehose keeps it under the error prefix)."""

from __future__ import annotations

import base64
import logging
from typing import Any

from aws_lambda_powertools.utilities.data_classes import (
    KinesisFirehoseDataTransformationRecord,
    KinesisFirehoseDataTransformationRecordMetadata,
    KinesisFirehoseDataTransformationResponse,
    KinesisFirehoseEvent,
)

from tracking.changes import stored_event
from tracking.json_text import dumps_compact
from tracking.lake.schema import lake_row, partition_keys

logger = logging.getLogger(__name__)


def transform(event: dict[str, Any]) -> dict[str, Any]:
    """The Firehose transformation's answer: one result per record, in order."""
    response = KinesisFirehoseDataTransformationResponse()
    for record in KinesisFirehoseEvent(event).records:
        response.add_record(_transformed(record.record_id, record.data_as_bytes))
    return response.asdict()


def _transformed(record_id: str, data: bytes) -> KinesisFirehoseDataTransformationRecord:
    try:
        stored = stored_event(data)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("lake record not readable", extra={"record_id": record_id, "error": repr(exc)})
        return KinesisFirehoseDataTransformationRecord(record_id=record_id, result="ProcessingFailed")
    if stored is None:
        return KinesisFirehoseDataTransformationRecord(record_id=record_id, result="Dropped")
    row = (dumps_compact(lake_row(stored)) + "\n").encode()
    return KinesisFirehoseDataTransformationRecord(
        record_id=record_id,
        data=base64.b64encode(row).decode(),
        metadata=KinesisFirehoseDataTransformationRecordMetadata(partition_keys=partition_keys(stored)),
    )
