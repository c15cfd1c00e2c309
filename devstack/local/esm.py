"""Lambda's event source mappings as AWS documents them, for the local stack and for tests that replay
failures.

For a stream shard: filter, batch, invoke; on a partial batch response retry from the lowest failed
sequence number; on a function error bisect the batch (when configured); after the retry budget,
describe the batch to the on-failure destination and move on. For a queue (``QueuePoller``):
receive, invoke, delete what succeeded."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack.local.queues import REGION, Queues, QueueServer, QueueSpec
from devstack.local.template import StreamMapping

logger = logging.getLogger("devstack.local.esm")
POLL_INTERVAL_S = 0.2  # how soon an idle queue is asked again (SQS's long polling, roughly)

Invoke = Callable[[dict[str, Any]], Any]
OnFailure = Callable[[dict[str, Any]], None]


def matches(pattern: Mapping[str, Any], value: Any) -> bool:
    """Lambda event filtering, for the pattern forms the template uses (nested keys, value lists)."""
    if not isinstance(value, Mapping):
        return False
    for name, expected in pattern.items():
        if name not in value:
            return False
        if isinstance(expected, Mapping):
            if not matches(expected, value[name]):
                return False
        elif isinstance(expected, list):
            if value[name] not in expected:
                return False
        elif value[name] != expected:
            return False
    return True


def passes_filters(mapping: StreamMapping, record: Mapping[str, Any]) -> bool:
    return not mapping.filter_patterns or any(matches(p, record) for p in mapping.filter_patterns)


@dataclass
class Invocation:
    records: list[dict[str, Any]]
    failed: bool = False  # a function error
    failures: list[str] = field(default_factory=list)  # sequence numbers of a partial batch response


@dataclass
class ShardConsumer:
    """Delivers one shard's records to a function the way Lambda does. ``deliver`` returns once every
    record given was either processed or handed to the on-failure destination."""

    mapping: StreamMapping
    invoke: Invoke
    shard_id: str
    stream_arn: str
    on_failure: OnFailure
    function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:local"
    invocations: int = 0
    # The stack is stopping: no more retries (the batch is not given up either: it is read again
    # after the restart, as the poller's checkpoint has not moved past it).
    stop: threading.Event | None = None

    def deliver(self, records: Sequence[dict[str, Any]]) -> None:
        batches = [
            list(records[i : i + self.mapping.batch_size])
            for i in range(0, len(records), self.mapping.batch_size)
        ]
        for batch in batches:
            self._deliver_batch(batch)

    def _deliver_batch(self, batch: list[dict[str, Any]]) -> None:
        pending: list[tuple[list[dict[str, Any]], int]] = [(batch, 0)]
        while pending:
            if self.stop is not None and self.stop.is_set():
                return
            records, retries = pending.pop(0)
            outcome = self._call(records)
            if not outcome.failed and not outcome.failures:
                continue
            exhausted = 0 <= self.mapping.maximum_retry_attempts <= retries
            if outcome.failed:
                if exhausted:
                    self._give_up(records, retries)
                elif self.mapping.bisect_on_error and len(records) > 1:
                    middle = len(records) // 2
                    pending[:0] = [(records[:middle], retries + 1), (records[middle:], retries + 1)]
                else:
                    pending.insert(0, (records, retries + 1))
                continue
            # A partial batch response: retry from the lowest reported sequence number.
            lowest = min(int(seq) for seq in outcome.failures)
            remaining = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) >= lowest]
            if not remaining:  # identifiers that name no record of the batch: Lambda retries it all
                remaining = records
            if exhausted:
                self._give_up(remaining, retries)
            else:
                pending.insert(0, (remaining, retries + 1))

    def _event(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        event: dict[str, Any] = {"Records": records}
        if self.mapping.tumbling_window_s:
            now = time.time()
            start = now - now % self.mapping.tumbling_window_s
            event.update(
                window={"start": _iso(start), "end": _iso(start + self.mapping.tumbling_window_s)},
                state={},
                shardId=self.shard_id,
                eventSourceARN=self.stream_arn,
                isFinalInvokeForWindow=False,
                isWindowTerminatedEarly=False,
            )
        return event

    def _call(self, records: list[dict[str, Any]]) -> Invocation:
        self.invocations += 1
        try:
            response = self.invoke(self._event(records))
        except Exception as exc:
            logger.warning("stream batch failed (%d records): %r", len(records), exc)
            return Invocation(records, failed=True)
        if self.mapping.tumbling_window_s and not (isinstance(response, Mapping) and "state" in response):
            return Invocation(records, failed=True)  # Lambda treats a missing state as a failure
        if self.mapping.report_batch_item_failures and isinstance(response, Mapping):
            items = response.get("batchItemFailures") or []
            identifiers = [item.get("itemIdentifier") for item in items if isinstance(item, Mapping)]
            if any(not identifier for identifier in identifiers) or len(identifiers) != len(items):
                return Invocation(records, failed=True)
            return Invocation(records, failures=[str(i) for i in identifiers])
        return Invocation(records)

    def _give_up(self, records: list[dict[str, Any]], retries: int) -> None:
        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": retries + 1,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": _iso(time.time()),
            "DDBStreamBatchInfo": {
                "shardId": self.shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(
                    first.get("ApproximateCreationDateTime", time.time())
                ),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime", time.time())),
                "batchSize": len(records),
                "streamArn": self.stream_arn,
            },
        }
        logger.error(
            "gave up on %d stream records %s..%s after %d retries: sent to the on-failure destination",
            len(records),
            first["SequenceNumber"],
            last["SequenceNumber"],
            retries,
        )
        self.on_failure(message)


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- SQS: Lambda's event source mapping for a queue --------------------------------------------------


@dataclass(frozen=True)
class QueueMapping:
    """A function's SQS event source (template.yaml)."""

    function: str
    queue: str
    batch_size: int = 10
    report_batch_item_failures: bool = False


def queue_mappings(template: Any) -> list[QueueMapping]:
    mappings = []
    for name, resource in template.of_type("AWS::Serverless::Function").items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "SQS":
                continue
            props = event["Properties"]
            mappings.append(
                QueueMapping(
                    function=name,
                    queue=props["Queue"]["Fn::GetAtt"][0],
                    batch_size=int(template.resolve(props.get("BatchSize", 10))),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in props.get("FunctionResponseTypes", []),
                )
            )
    return mappings


def sqs_event(spec: QueueSpec, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Received messages as Lambda hands an SQS batch to a function."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": spec.arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


class QueuePoller(threading.Thread):
    """Lambda's SQS event source mapping: receive a batch, invoke, delete what succeeded. With a
    partial batch response only the messages it names stay; a function error leaves them all, and
    each comes back when its visibility timeout ends (or what the function set)."""

    def __init__(self, queues: Queues, mapping: QueueMapping, invoke: Invoke, stop: threading.Event) -> None:
        super().__init__(name=f"queue-{mapping.function}", daemon=True)
        self._queues = queues
        self._mapping = mapping
        self._invoke = invoke
        self._stop = stop
        self.invocations = 0

    def run(self) -> None:
        spec = self._queues.spec(self._mapping.queue)
        while not self._stop.is_set():
            try:
                busy = self.poll_once(spec)
            except Exception:
                logger.exception("queue poll failed; retrying")
                busy = False
            if not busy:
                self._stop.wait(POLL_INTERVAL_S)

    def poll_once(self, spec: QueueSpec) -> bool:
        messages = self._queues.receive(spec.name, self._mapping.batch_size)
        if not messages:
            return False
        self.invocations += 1
        try:
            response = self._invoke(sqs_event(spec, messages))
        except Exception as exc:
            logger.warning("queue batch failed (%d messages): %r", len(messages), exc)
            return True
        kept: set[str] = set()
        if self._mapping.report_batch_item_failures and isinstance(response, Mapping):
            items = response.get("batchItemFailures") or []
            kept = {str(item.get("itemIdentifier")) for item in items if isinstance(item, Mapping)}
        done = [message["ReceiptHandle"] for message in messages if message["MessageId"] not in kept]
        if done:
            self._queues.delete_many(spec.name, done)
        return True


def start_queue_pollers(
    server: QueueServer,
    template: Any,
    invoke: Mapping[str, Invoke],
    stop: threading.Event,
    concurrency: int = 4,
) -> list[QueuePoller]:
    """``concurrency`` pollers per queue, each invoking its own batch (Lambda polls a queue with
    several at once): a batch held up by a slow destination does not hold up the next."""
    pollers = [
        QueuePoller(server.queues, mapping, invoke[mapping.function], stop)
        for mapping in queue_mappings(template)
        for _ in range(concurrency)
    ]
    for poller in pollers:
        poller.start()
    return pollers
