"""The two functions' batches as Lambda hands them over, through Powertools' partial batch responses.

- The router's: records of the events table's Kinesis data stream. The stored events of the batch
  are queued at once; if that fails, every record fails (Lambda retries the batch; a message queued
  twice is delivered once, see ``DeliveryStore.claim``). A record that cannot be read fails alone.
- The replay's: SQS messages, each running one chunk of a replay (``Replayer.step``); one that
  raises (storage unavailable) comes back after the queue's visibility timeout.
- The delivery's: SQS messages. A message to retry has its visibility set to its backoff and is
  reported failed (SQS shows it again then); the others are acknowledged. The batch never raises for
  a message, so one destination's failures never make Lambda return another's."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from tracking.batches import GroupedBatchProcessor
from tracking.changes import stored_event
from tracking.destinations.delivery import Delivery, Envelope
from tracking.destinations.replay import Replayer
from tracking.destinations.router import Router
from tracking.models.canonical import CanonicalEvent

logger = logging.getLogger(__name__)


class RetryLater(Exception):
    """A message shown again after its backoff (its visibility was set)."""


class Visibility(Protocol):
    def show_again(self, receipts: Sequence[tuple[str, int]]) -> None:
        """Show each message (its receipt handle) again after so many seconds."""


def router_processor() -> GroupedBatchProcessor[KinesisStreamRecord]:
    return GroupedBatchProcessor(
        EventType.KinesisDataStreams, KinesisStreamRecord, lambda record: record.kinesis.sequence_number
    )


def delivery_processor() -> GroupedBatchProcessor[SQSRecord]:
    return GroupedBatchProcessor(
        EventType.SQS, SQSRecord, lambda record: record.message_id, raise_on_entire_batch_failure=False
    )


def route_batch(
    event: dict[str, Any],
    context: LambdaContext | None,
    router: Router,
    processor: GroupedBatchProcessor[KinesisStreamRecord],
) -> dict[str, Any]:
    def handle(records: list[KinesisStreamRecord]) -> Mapping[Hashable, BaseException]:
        failures: dict[Hashable, BaseException] = {}
        events: list[CanonicalEvent] = []
        for record in records:
            try:
                found = stored_event(base64.b64decode(record.kinesis.data))
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("unreadable change record", extra={"sequence": record.kinesis.sequence_number})
                failures[record.kinesis.sequence_number] = exc
                continue
            if found is not None:
                events.append(found)
        try:
            router.route(events)
        except Exception as exc:
            logger.warning("events not queued for destinations", extra={"error": repr(exc)})
            return {record.kinesis.sequence_number: exc for record in records}
        return failures

    return dict(
        process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
    )


def deliver_batch(
    event: dict[str, Any],
    context: LambdaContext | None,
    delivery: Delivery,
    visibility: Visibility,
    processor: GroupedBatchProcessor[SQSRecord],
) -> dict[str, Any]:
    def handle(records: list[SQSRecord]) -> Mapping[Hashable, BaseException]:
        failures: dict[Hashable, BaseException] = {}
        envelopes: list[Envelope] = []
        receipts: dict[str, str] = {}
        for record in records:
            try:
                body = json.loads(record.body)
                envelopes.append(
                    Envelope(record.message_id, int(record.attributes.approximate_receive_count), body)
                )
                receipts[record.message_id] = record.receipt_handle
            except (ValueError, TypeError) as exc:  # not ours: the redrive policy moves it aside
                logger.error("unreadable queue message", extra={"message_id": record.message_id})
                failures[record.message_id] = exc
        verdicts = delivery.deliver(envelopes)
        later = [(receipts[m], v.retry_in_s) for m, v in verdicts.items() if v.retry_in_s is not None]
        try:
            visibility.show_again(later)
        except Exception:  # they come back after the queue's own visibility timeout instead
            logger.exception("backoff not set")
        failures.update({m: RetryLater(m) for m, v in verdicts.items() if v.retry_in_s is not None})
        return failures

    return dict(
        process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
    )


def replay_batch(
    event: dict[str, Any], context: LambdaContext | None, replayer: Replayer, processor: BatchProcessor
) -> dict[str, Any]:
    def handle(record: SQSRecord) -> None:
        replayer.step(json.loads(record.body))

    return dict(
        process_partial_response(event=event, record_handler=handle, processor=processor, context=context)
    )
