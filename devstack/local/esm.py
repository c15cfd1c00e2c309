"""Lambda's event source mapping for a stream shard, as AWS documents it, for the local stack and for
tests that replay failures: filter, batch, invoke; on a partial batch response retry from the lowest
failed sequence number; on a function error bisect the batch (when configured); after the retry
budget, describe the batch to the on-failure destination and move on."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack.local.template import StreamMapping

logger = logging.getLogger("devstack.local.esm")

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
