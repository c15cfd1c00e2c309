"""DynamoDB Streams adapter: Powertools' partial batch response for a handler that takes the whole
batch at once (it writes once per group, not once per record)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBStreamEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.aggregator import Aggregator, RawRecord

BatchHandler = Callable[[list[DynamoDBRecord]], Mapping[str, BaseException]]


class GroupedBatchProcessor(BatchProcessor):
    """Powertools' BatchProcessor, but the handler gets every record of the batch and answers which
    ones failed; Powertools then reports them (Lambda retries from the lowest sequence number) or, if
    all failed, raises so that Lambda bisects the batch."""

    def __init__(self) -> None:
        super().__init__(event_type=EventType.DynamoDBStreams)

    def process(self) -> list[tuple[Any, ...]]:
        records = [DynamoDBRecord(record) for record in self.records]
        failures = self.handler(records)
        results: list[tuple[Any, ...]] = []
        for record in records:
            error = failures.get(record.dynamodb.sequence_number if record.dynamodb else "")
            if error is None:
                results.append(self.success_handler(record, None))
            else:
                results.append(self.failure_handler(record, (type(error), error, error.__traceback__)))
        return results


class MissingShardId(RuntimeError):
    """The exactly-once guard is per stream shard; Lambda names the shard only in tumbling-window
    invocations, so the event source mapping must set ``TumblingWindowInSeconds``."""


def handle(
    event: dict[str, Any], context: LambdaContext, aggregator: Aggregator, processor: GroupedBatchProcessor
) -> dict[str, Any]:
    shard = DynamoDBStreamEvent(event).shard_id
    if not shard:
        raise MissingShardId(MissingShardId.__doc__)

    def apply(records: list[DynamoDBRecord]) -> Mapping[str, BaseException]:
        raw = [
            RawRecord(
                sequence_number=record.raw_event["dynamodb"]["SequenceNumber"],
                event_name=record.raw_event["eventName"],
                new_image=record.raw_event["dynamodb"].get("NewImage"),
            )
            for record in records
        ]
        return aggregator.process(shard, raw)

    response = process_partial_response(
        event=event, record_handler=apply, processor=processor, context=context
    )
    # A tumbling-window invocation must answer a state (this one keeps none).
    return {**response, "state": {}}
