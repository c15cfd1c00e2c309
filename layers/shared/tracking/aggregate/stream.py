"""DynamoDB Streams adapter: Powertools' partial batch response for a handler that takes the whole
batch at once (it writes once per group, not once per record). Each record is decoded here, once,
from the image Powertools has already deserialized into the aggregator's input, a
:class:`~tracking.aggregate.fold.StreamRecord`; a record that cannot be decoded fails alone."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBStreamEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.aggregate.aggregator import Aggregator
from tracking.aggregate.fold import StreamRecord
from tracking.batches import GroupedBatchProcessor
from tracking.keys import CLAIM_KIND, DELETION_KIND, INDEX_KIND, REJECTED_KIND, client_id_pk
from tracking.storage.events import event_from_values
from tracking.storage.rejections import record_from_values

logger = logging.getLogger(__name__)


def sequence_number(record: DynamoDBRecord) -> int:
    """Sequence numbers compare as numbers (they grow within a shard; their text may not sort)."""
    return int(record.raw_event["dynamodb"]["SequenceNumber"])


def decode(record: DynamoDBRecord) -> StreamRecord:
    """The record as the aggregator reads it: only an INSERT carries an event, or recorded rejections."""
    name = str(record.raw_event["eventName"])
    if name != "INSERT":
        return StreamRecord(sequence_number(record), name, None)
    stream = record.dynamodb
    if stream is None or stream.raw_event.get("NewImage") is None:
        raise ValueError("INSERT record without NewImage (stream view type must be NEW_IMAGE)")
    return decode_image(sequence_number(record), name, stream.new_image)


def decode_image(seq: int, name: str, image: Mapping[str, Any] | None) -> StreamRecord:
    """A record from its new image, already turned into Python values."""
    if name != "INSERT" or image is None:
        return StreamRecord(seq, name, None)
    if image.get("kind") in (INDEX_KIND, DELETION_KIND, CLAIM_KIND):  # not events: nothing to count
        return StreamRecord(seq, name, None)
    if image.get("kind") == REJECTED_KIND:
        return StreamRecord(seq, name, None, rejected=record_from_values(image))
    event = event_from_values(image)
    by_id = image.get("pk") == client_id_pk(event.plugin_id, event.event_id)
    return StreamRecord(seq, name, event, by_id=by_id)


def stream_processor() -> GroupedBatchProcessor[DynamoDBRecord]:
    """The aggregator's batches: DynamoDB Streams records, failed ones named by sequence number."""
    return GroupedBatchProcessor(EventType.DynamoDBStreams, DynamoDBRecord, sequence_number)


class MissingShardId(RuntimeError):
    """The exactly-once guard is per stream shard; Lambda names the shard only in tumbling-window
    invocations, so the event source mapping must set ``TumblingWindowInSeconds``."""


def handle(
    event: dict[str, Any],
    context: LambdaContext,
    aggregator: Aggregator,
    processor: GroupedBatchProcessor[DynamoDBRecord],
) -> dict[str, Any]:
    if not event.get("Records"):
        # The last invocation of a tumbling window may carry no records (Powertools refuses those).
        return {"batchItemFailures": [], "state": {}}
    shard = DynamoDBStreamEvent(event).shard_id
    if not shard:
        raise MissingShardId(MissingShardId.__doc__)

    def apply(records: list[DynamoDBRecord]) -> Mapping[int, BaseException]:
        decoded: list[StreamRecord] = []
        unreadable: dict[int, BaseException] = {}
        for record in records:
            try:
                decoded.append(decode(record))
            except Exception as exc:
                seq = record.raw_event["dynamodb"]["SequenceNumber"]
                logger.error("unreadable stream record", extra={"sequence_number": seq, "error": repr(exc)})
                unreadable[sequence_number(record)] = exc
        return {**unreadable, **aggregator.process(shard, decoded)}

    response = process_partial_response(
        event=event, record_handler=apply, processor=processor, context=context
    )
    # A tumbling-window invocation must answer a state (this one keeps none).
    return {**response, "state": {}}
