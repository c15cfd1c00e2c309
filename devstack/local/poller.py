"""Reads the events table's stream from DynamoDB Local and feeds the aggregate function, as Lambda's
event source mapping does on AWS (batch size, batching window, filters, partial batch responses,
bisect, retries and the on-failure destination come from template.yaml). Checkpoints are kept on
disk, so a restarted stack resumes where it stopped.

DynamoDB Local's stream has one shard; a table on AWS has one per partition, and a user's events can
sit on several (events keyed by their own messageId, or after a split). ``shards`` > 1 emulates that:
each batch read is split by a hash of each record's partition key into that many shards (the same key
always to the same one, in order), each delivered as Lambda delivers a shard's batch, all at once.
The checkpoint moves once every part is delivered, so a crash in between redelivers the parts already
applied, as a retried batch would on AWS."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack.local.esm import ShardConsumer, passes_filters
from devstack.local.template import StreamMapping

logger = logging.getLogger("devstack.local.poller")

POLL_INTERVAL_S = 0.2
SHARDS_REFRESH_S = 5.0  # how often the shard list is read again (a split adds shards)
Record = dict[str, Any]


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record in the shape Lambda hands to a function."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if created is not None and not isinstance(created, (int, float)):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record.get("eventID"),
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", "us-east-1"),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


class Checkpoints:
    """The last sequence number delivered per shard, persisted (atomically) to a JSON file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._data: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, stream_arn: str, shard_id: str) -> str | None:
        return self._data.get(stream_arn, {}).get(shard_id)

    def set(self, stream_arn: str, shard_id: str, sequence_number: str) -> None:
        self._data.setdefault(stream_arn, {})[shard_id] = sequence_number
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._data))
        temporary.replace(self._path)


def checkpoint_file(state_dir: Path, function: str) -> Path:
    """Each event source mapping keeps its own place in the stream (two functions read it). A stack
    from before there were two starts the aggregator where its one file left off."""
    path = state_dir / f"stream-checkpoints.{function}.json"
    legacy = state_dir / "stream-checkpoints.json"
    if not path.exists() and legacy.exists() and function == "AggregateFunction":
        path.write_text(legacy.read_text())
    return path


def split_by_key(
    records: list[dict[str, Any]], shard_id: str, shards: int
) -> dict[str, list[dict[str, Any]]]:
    """Records of one read in ``shards`` emulated shards, by a hash of their partition key (each
    part in stream order)."""
    if shards == 1:
        return {shard_id: records} if records else {}
    parts: dict[str, list[Record]] = {}
    for record in records:
        key = record["dynamodb"]["Keys"]["pk"]["S"]
        part = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % shards
        parts.setdefault(f"{shard_id}-{part}", []).append(record)
    return parts


class StreamPoller(threading.Thread):
    def __init__(
        self,
        streams_client: Any,
        dynamodb_client: Any,
        mapping: StreamMapping,
        invoke: Callable[[dict[str, Any]], Any],
        *,
        state_dir: Path,
        stop: threading.Event,
        shards: int = 1,
    ) -> None:
        super().__init__(name=f"poller-{mapping.function}", daemon=True)
        self._streams = streams_client
        self._dynamodb = dynamodb_client
        self._mapping = mapping
        self._invoke = invoke
        self._stop = stop
        self._checkpoints = Checkpoints(checkpoint_file(state_dir, mapping.function))
        self._failures = state_dir / "on-failure.jsonl"
        self._finished: set[str] = set()  # closed shards read to their end
        # Where each shard's next read starts, kept between polls as Lambda's mapping keeps it (a
        # DescribeStream and a GetShardIterator each poll were a fifth of DynamoDB Local's requests
        # under load); read again from the checkpoint when a batch was cut short or its iterator
        # expired.
        self._iterators: dict[str, str] = {}
        self._listed: tuple[float, list[dict[str, Any]]] | None = None
        self._shards_per_shard = max(1, shards)
        self.delivered = 0

    def _on_failure(self, message: dict[str, Any]) -> None:
        with self._failures.open("a") as handle:
            handle.write(json.dumps(message) + "\n")

    def run(self) -> None:
        stream_arn = self._dynamodb.describe_table(TableName=self._mapping.table)["Table"]["LatestStreamArn"]
        while not self._stop.is_set():
            try:
                busy = self._poll_once(stream_arn)
            except Exception:
                logger.exception("stream poll failed; retrying")
                busy = False
            if not busy:
                self._stop.wait(POLL_INTERVAL_S)

    def _shards(self, stream_arn: str) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        start: dict[str, str] = {}
        while True:
            description = self._streams.describe_stream(StreamArn=stream_arn, **start)["StreamDescription"]
            shards.extend(description["Shards"])
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            start = {"ExclusiveStartShardId": last}

    def _current_shards(self, stream_arn: str) -> list[dict[str, Any]]:
        now = time.monotonic()
        if self._listed is None or now - self._listed[0] >= SHARDS_REFRESH_S:
            self._listed = (now, self._shards(stream_arn))
        return self._listed[1]

    def _poll_once(self, stream_arn: str) -> bool:
        """Read every shard whose parent is done; True when records were delivered."""
        shards = self._current_shards(stream_arn)
        known = {shard["ShardId"] for shard in shards}
        busy = False
        for shard in shards:
            shard_id = shard["ShardId"]
            parent = shard.get("ParentShardId")
            if shard_id in self._finished or (parent in known and parent not in self._finished):
                continue  # a child waits for its parent: one user's events stay in order
            busy |= self._read_shard(stream_arn, shard)
        return busy

    def _iterator(self, stream_arn: str, shard_id: str) -> str:
        kept = self._iterators.pop(shard_id, None)
        if kept is not None:
            return kept
        checkpoint = self._checkpoints.get(stream_arn, shard_id)
        position = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": checkpoint}
            if checkpoint
            else {"ShardIteratorType": self._mapping.starting_position}
        )
        iterator: str = self._streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard_id, **position)[
            "ShardIterator"
        ]
        return iterator

    def _records(self, stream_arn: str, shard_id: str, iterator: str, first: bool) -> dict[str, Any]:
        """A GetRecords; a kept iterator past its 15 minutes, or one DynamoDB Local no longer takes
        (one taken at the horizon of a shard that was still empty answers TrimmedDataAccess once its
        first records come), is taken again from the checkpoint: only for a batch's first read, later
        ones raise, and the next poll starts from the checkpoint."""
        stale = (
            self._streams.exceptions.ExpiredIteratorException,
            self._streams.exceptions.TrimmedDataAccessException,
        )
        try:
            answer: dict[str, Any] = self._streams.get_records(
                ShardIterator=iterator, Limit=self._mapping.batch_size
            )
        except stale:
            if not first:
                raise
            answer = self._streams.get_records(
                ShardIterator=self._iterator(stream_arn, shard_id), Limit=self._mapping.batch_size
            )
        return answer

    def _read_shard(self, stream_arn: str, shard: dict[str, Any]) -> bool:
        shard_id = shard["ShardId"]
        iterator: str | None = self._iterator(stream_arn, shard_id)
        gathered: list[dict[str, Any]] = []
        window_ends = None
        while iterator and not self._stop.is_set():
            answer = self._records(stream_arn, shard_id, iterator, first=not gathered)
            iterator = answer.get("NextShardIterator")
            gathered.extend(answer["Records"])
            if gathered and window_ends is None:
                window_ends = time.monotonic() + self._mapping.batching_window_s
            if len(gathered) >= self._mapping.batch_size or (window_ends and time.monotonic() >= window_ends):
                break
            if not answer["Records"] and (window_ends is None or iterator is None):
                break
            if len(answer["Records"]) < self._mapping.batch_size and window_ends is not None:
                # At the shard's tip: read again in a moment, as Lambda polls a shard a few times a
                # second (reading again at once was a loop of GetRecords calls of a record or two).
                self._stop.wait(min(POLL_INTERVAL_S, max(0.0, window_ends - time.monotonic())))
        if iterator is None and not gathered:
            self._finished.add(shard_id)
            self._listed = None  # a closed shard: its children are listed at once
        if not gathered:
            if iterator is not None and not self._stop.is_set():
                self._iterators[shard_id] = iterator
            return False
        whole = len(gathered) <= self._mapping.batch_size
        gathered = gathered[: self._mapping.batch_size]
        records = [lambda_record(r, stream_arn) for r in gathered]
        wanted = [r for r in records if passes_filters(self._mapping, r)]
        parts = split_by_key(wanted, shard_id, self._shards_per_shard)
        consumers = [
            threading.Thread(
                target=ShardConsumer(
                    self._mapping, self._invoke, part, stream_arn, self._on_failure, stop=self._stop
                ).deliver,
                args=(records,),
                name=f"shard-{part}",
            )
            for part, records in parts.items()
        ]
        for consumer in consumers:
            consumer.start()
        for consumer in consumers:
            consumer.join()
        if self._stop.is_set():  # stopped midway: the batch is read again after a restart
            return True
        self.delivered += len(wanted)
        self._checkpoints.set(stream_arn, shard_id, gathered[-1]["dynamodb"]["SequenceNumber"])
        if whole and iterator is not None:  # else the next read starts again from the checkpoint
            self._iterators[shard_id] = iterator
        return True
