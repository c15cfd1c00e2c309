"""DynamoDB Streams adapter of the forget function: each new deletion step is one record, run with
Powertools' batch processing (a step that fails is reported; Lambda delivers it again and it resumes,
since removing what is gone changes nothing)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.forget.service import Forgetter
from tracking.keys import DELETION_KIND
from tracking.models.people import DeletionStep
from tracking.storage.deletions import step_from_values


def decode(record: DynamoDBRecord) -> DeletionStep | None:
    """The step a record carries: only a newly written deletion step is work."""
    if record.raw_event.get("eventName") != "INSERT" or record.dynamodb is None:
        return None
    image = record.dynamodb.new_image
    if image.get("kind") != DELETION_KIND:
        return None
    return step_from_values(dict(image))


def handle(
    event: dict[str, Any], context: LambdaContext, forgetter: Forgetter, processor: BatchProcessor
) -> dict[str, Any]:
    def run(record: DynamoDBRecord) -> None:
        step = decode(record)
        if step is not None and not step.done:
            forgetter.run(step)

    if not event.get("Records"):
        return {"batchItemFailures": []}
    response = process_partial_response(event=event, record_handler=run, processor=processor, context=context)
    return dict(response)


def new_processor() -> BatchProcessor:
    # A step that failed is reported like any record (Lambda delivers it again), even when it was
    # the batch's only one: nothing to bisect.
    return BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
