"""The destinations' stores in memory: a plugin's destinations (the control table's part), and the
deliveries table's markers, failures and counters, with the same rules as ``DeliveryStore``: a claim
takes a lease unless the message was delivered or another lease is live."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tracking.destinations.models import Claim, Counts, Destination, DestinationRef, Failure, Replay
from tracking.models.storage_failures import StorageUnavailable


@dataclass
class FakeDestinations:
    saved: dict[tuple[str, str], Destination] = field(default_factory=dict)
    reads: int = 0

    def destinations(self, plugin_id: str) -> list[Destination]:
        self.reads += 1
        return [d for (plugin, _), d in sorted(self.saved.items()) if plugin == plugin_id]

    def save_destination(self, destination: Destination) -> None:
        self.saved[(destination.plugin_id, destination.destination_id)] = destination

    def delete_destination(self, plugin_id: str, destination_id: str) -> bool:
        return self.saved.pop((plugin_id, destination_id), None) is not None


@dataclass
class FakeOutbox:
    lease_ms: int = 60_000
    markers: dict[tuple[DestinationRef, str], dict[str, Any]] = field(default_factory=dict)
    failed: dict[tuple[DestinationRef, str], Failure] = field(default_factory=dict)
    counts: dict[DestinationRef, list[Counts]] = field(default_factory=dict)
    forgotten_at: dict[tuple[str, str], int] = field(default_factory=dict)
    unavailable: bool = False  # every call fails as DynamoDB's throttling does

    def _check(self) -> None:
        if self.unavailable:
            raise StorageUnavailable("Storage is unavailable (fake); retry later")

    def forget_ids(self, plugin_id: str, ids: Sequence[str], at: int) -> None:
        self._check()
        for i in ids:
            self.forgotten_at[(plugin_id, i)] = at

    def forgotten(self, plugin_id: str, ids: Sequence[str]) -> dict[str, int]:
        self._check()
        return {i: self.forgotten_at[(plugin_id, i)] for i in ids if (plugin_id, i) in self.forgotten_at}

    def claim(self, ref: DestinationRef, message_id: str, now_ms: int) -> Claim:
        self._check()
        held = self.markers.get((ref, message_id))
        if held is not None:
            if held["state"] == "delivered":
                return "delivered"
            if held["until"] >= now_ms:
                return "busy"
        self.markers[(ref, message_id)] = {"state": "sending", "until": now_ms + self.lease_ms}
        return "claimed"

    def mark_delivered(self, ref: DestinationRef, message_ids: Sequence[str], now_ms: int) -> None:
        self._check()
        for message_id in message_ids:
            self.markers[(ref, message_id)] = {"state": "delivered", "at": now_ms}

    def release(self, ref: DestinationRef, message_ids: Sequence[str]) -> None:
        self._check()
        for message_id in message_ids:
            self.markers.pop((ref, message_id), None)

    def add_failures(self, ref: DestinationRef, failures: Sequence[Failure]) -> None:
        self._check()
        for failure in failures:
            self.failed[(ref, failure.message_id)] = failure

    def count(self, ref: DestinationRef, counts: Counts) -> None:
        self._check()
        self.counts.setdefault(ref, []).append(counts)

    def total(self, ref: DestinationRef) -> dict[str, int]:
        kept = self.counts.get(ref, [])
        return {
            "delivered": sum(c.delivered for c in kept),
            "failed": sum(c.failed for c in kept),
            "pending": sum(c.pending for c in kept),
        }

    def delivered(self, ref: DestinationRef) -> set[str]:
        return {m for (r, m), held in self.markers.items() if r == ref and held["state"] == "delivered"}


@dataclass
class FakePluginFailures:
    """A plugin's destinations' failures, paged as ``storage.deliveries.PluginFailures`` pages them."""

    kept: dict[tuple[DestinationRef, str], Failure] = field(default_factory=dict)

    def page(
        self, plugin_id: str, cursor: str | None, limit: int
    ) -> tuple[list[tuple[DestinationRef, Failure]], str | None]:
        mine = sorted(
            ((ref, failure) for (ref, _), failure in self.kept.items() if ref.plugin_id == plugin_id),
            key=lambda pair: (pair[0].destination_id, pair[1].message_id),
        )
        start = int(cursor or 0)
        following = start + limit
        return mine[start:following], (str(following) if following < len(mine) else None)

    def remove(self, ref: DestinationRef, message_ids: Sequence[str]) -> None:
        for message_id in message_ids:
            self.kept.pop((ref, message_id), None)


@dataclass
class FakeReplays:
    """Replays' records with ``ReplayStore``'s rules: a chunk is recorded once (conditional on its
    number), counters added to a replay that exists."""

    kept: dict[tuple[DestinationRef, str], Replay] = field(default_factory=dict)

    def create(self, replay: Replay) -> None:
        self.kept[(replay.ref, replay.replay_id)] = replay

    def get(self, ref: DestinationRef, replay_id: str) -> Replay | None:
        return self.kept.get((ref, replay_id))

    def advance(self, replay: Replay, *, position: str | None, queued: int, listed: bool) -> bool:
        held = self.kept[(replay.ref, replay.replay_id)]
        if held.chunk != replay.chunk:
            return False
        self.kept[(replay.ref, replay.replay_id)] = replace(
            held, chunk=held.chunk + 1, position=position, queued=held.queued + queued, listed=listed
        )
        return True

    def fail(self, replay: Replay, error: str) -> None:
        held = self.kept[(replay.ref, replay.replay_id)]
        self.kept[(replay.ref, replay.replay_id)] = replace(held, error=error)

    def queued_next(self, replay: Replay, chunk: int) -> None:
        held = self.kept[(replay.ref, replay.replay_id)]
        self.kept[(replay.ref, replay.replay_id)] = replace(held, next_queued=max(held.next_queued, chunk))

    def settle(self, ref: DestinationRef, replay_id: str, *, sent: int, failed: int, skipped: int) -> None:
        held = self.kept.get((ref, replay_id))
        if held is not None:
            self.kept[(ref, replay_id)] = replace(
                held, sent=held.sent + sent, failed=held.failed + failed, skipped=held.skipped + skipped
            )
