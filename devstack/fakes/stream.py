"""A table's stream as Lambda delivers it to the aggregator: each partition key on one shard, sequence
numbers growing within a shard, batches of at most ``batch_size``, and on a partial failure the batch
retried from its lowest failed record (what ``ReportBatchItemFailures`` does)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from devstack.fakes.table import Table
from tracking.aggregate.fold import StreamRecord
from tracking.aggregate.stream import decode_image
from tracking.storage.dynamo import from_item

Process = Callable[[str, Sequence[StreamRecord]], Mapping[int, BaseException]]


class StuckShard(RuntimeError):
    """A shard's records kept failing past the retries allowed."""


@dataclass
class FakeStream:
    table: Table
    shards: int = 1
    batch_size: int = 100
    read: int = 0  # how many of the table's changes have been put on shards
    pending: dict[str, list[StreamRecord]] = field(default_factory=dict)
    next_seq: int = 10**20  # real sequence numbers are 21+ digits
    delivered: list[tuple[str, list[StreamRecord]]] = field(default_factory=list)  # every batch, in order

    def shard_of(self, pk: str) -> str:
        n = int.from_bytes(hashlib.sha256(pk.encode()).digest()[:4], "big") % self.shards
        return f"shardId-{n:08d}"

    def pull(self) -> None:
        """Put the table's new changes on their shards."""
        for change in self.table.stream[self.read :]:
            image = change.new or change.old
            assert image is not None
            self.next_seq += 1
            values = from_item(change.new) if change.new is not None else None
            record = decode_image(self.next_seq, change.event_name, values)
            self.pending.setdefault(self.shard_of(image["pk"]["S"]), []).append(record)
        self.read = len(self.table.stream)

    def deliver(self, process: Process, *, attempts: int = 10) -> dict[str, BaseException]:
        """Every pending record to ``process``, shard by shard, until none is left; a shard whose
        records fail ``attempts`` times in a row is left with them (its last error answered)."""
        self.pull()
        stuck: dict[str, BaseException] = {}
        for shard in sorted(self.pending):
            tries = 0
            while self.pending[shard]:
                batch = self.pending[shard][: self.batch_size]
                self.delivered.append((shard, batch))
                failures = process(shard, batch)
                if not failures:
                    del self.pending[shard][: len(batch)]
                    tries = 0
                    continue
                lowest = min(failures)
                done = sum(1 for record in batch if record.seq < lowest)
                del self.pending[shard][:done]
                tries = 0 if done else tries + 1
                if tries >= attempts:
                    stuck[shard] = failures[lowest]
                    break
        return stuck
