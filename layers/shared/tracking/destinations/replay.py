"""Replaying a destination's stored events of a range of days (shared/API.md, "Replay").

The lake lists the events (DuckDB locally, Athena deployed: they are partitioned by plugin and day,
where the events table is not); the events table gives each one whole, as stored, so a replayed
message is the one the router sent (the same ``messageId``, so the same ``Idempotency-Key``), and an
event deleted since is not sent. The replay runs in chunks, each a control message on the replay
queue: list a page, queue its messages on the delivery queue, record the chunk (once: it is
conditional on the chunk's number), queue the next chunk (and record that it was: a chunk that
comes back after its record queues the next again only if that was not recorded). A chunk run twice
queues its messages twice, and the delivery sends each once (a replayed message's marker names its
replay).

Its status: ``pending`` until every chunk was queued and every message sent, failed or skipped (a
forgotten person's; the destination disabled since), then ``done``; ``failed`` if the lake could not
list the events."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tracking.destinations.messages import segment_message
from tracking.destinations.models import Counts, Destination, DestinationRef, Replay
from tracking.destinations.router import Counter, Destinations, Queue, matches
from tracking.lake.questions import Listing, ListingPage
from tracking.models.canonical import CanonicalEvent
from tracking.models.storage_failures import LakeQueryFailed

logger = logging.getLogger(__name__)

CHUNK = 500  # events listed, read and queued per chunk: well within a function's timeout
RUNNING_AGAIN_S = 5  # the listing's query still runs: look again after this


class ReplayJobs(Protocol):
    def create(self, replay: Replay) -> None: ...
    def get(self, ref: DestinationRef, replay_id: str) -> Replay | None: ...
    def advance(self, replay: Replay, *, position: str | None, queued: int, listed: bool) -> bool: ...
    def fail(self, replay: Replay, error: str) -> None: ...
    def queued_next(self, replay: Replay, chunk: int) -> None: ...


class ListingSource(Protocol):
    def listing_page(
        self, listing: Listing, plugin_id: str, position: str | None, limit: int
    ) -> ListingPage | None: ...


class StoredEvents(Protocol):
    def stored(self, plugin_id: str, keys: Sequence[tuple[str, str]]) -> list[CanonicalEvent]: ...


class NoLake:
    """A stack without a lake (neither ``LAKE_DIR`` nor Athena's names): every replay fails, saying so."""

    def listing_page(
        self, listing: Listing, plugin_id: str, position: str | None, limit: int
    ) -> ListingPage | None:
        raise LakeQueryFailed("This stack has no lake to list the events from")


def control(replay: Replay, chunk: int) -> dict[str, Any]:
    """The replay queue's message that runs one chunk."""
    ref = replay.ref
    return {
        "plugin_id": ref.plugin_id,
        "destination_id": ref.destination_id,
        "replay_id": replay.replay_id,
        "chunk": chunk,
    }


def listing_of(replay: Replay, destination: Destination) -> Listing:
    wanted = destination.config.filter
    return Listing(replay.first, replay.last, wanted.types, wanted.events, bots=destination.bots == "include")


def start_replay(
    jobs: ReplayJobs, chunks: Queue, ref: DestinationRef, days: tuple[str, str], now_ms: int
) -> Replay:
    """Record a new replay and queue its first chunk."""
    replay = Replay(ref, uuid.uuid4().hex, days[0], days[1], now_ms)
    jobs.create(replay)
    chunks.send([control(replay, 0)])
    return replay


class Replayer:
    def __init__(
        self,
        jobs: ReplayJobs,
        lake: ListingSource,
        events: StoredEvents,
        *,
        destinations: Destinations,
        deliveries: Queue,
        chunks: Queue,
        counter: Counter,
        clock_ms: Callable[[], int],
        chunk: int = CHUNK,
    ) -> None:
        self._jobs = jobs
        self._lake = lake
        self._events = events
        self._destinations = destinations
        self._deliveries = deliveries
        self._chunks = chunks
        self._counter = counter
        self._clock = clock_ms
        self._chunk = chunk

    def step(self, body: dict[str, Any]) -> None:
        """Run the chunk a control message names. Raises when storage is unavailable (the message
        comes back; the chunk is run again, at most once recorded)."""
        ref = DestinationRef(str(body["plugin_id"]), str(body["destination_id"]))
        chunk = int(body["chunk"])
        replay = self._jobs.get(ref, str(body["replay_id"]))
        if replay is None or replay.error is not None or replay.listed:
            return
        if replay.chunk != chunk:
            if replay.chunk > replay.next_queued:  # recorded, but its next chunk's message was lost
                self._queue_chunk(replay, replay.chunk)
            return
        destination = self._destinations.destination(ref)
        if destination is None:
            self._jobs.fail(replay, "the destination was removed")
            return
        try:
            page = self._lake.listing_page(
                listing_of(replay, destination), ref.plugin_id, replay.position, self._chunk
            )
        except LakeQueryFailed as exc:  # for good: asking again fails again
            self._jobs.fail(replay, str(exc))
            return
        if page is None:  # the listing's query still runs
            self._chunks.send([control(replay, chunk)], delay_s=RUNNING_AGAIN_S)
            return
        bodies = self._bodies(replay, destination, page.keys)
        if bodies:
            self._deliveries.send(bodies)
        listed = page.position is None
        if not self._jobs.advance(replay, position=page.position, queued=len(bodies), listed=listed):
            return  # another run of this chunk recorded it
        if bodies:
            self._counter.count(ref, Counts(pending=len(bodies)))
        if not listed:
            self._queue_chunk(replay, chunk + 1, delay_s=0 if page.keys else 1)
        else:
            logger.info("replay listed", extra={"replay_id": replay.replay_id, "chunks": chunk + 1})

    def _queue_chunk(self, replay: Replay, chunk: int, delay_s: int = 0) -> None:
        self._chunks.send([control(replay, chunk)], delay_s=delay_s)
        self._jobs.queued_next(replay, chunk)

    def _bodies(
        self, replay: Replay, destination: Destination, keys: Sequence[tuple[str, str]]
    ) -> list[dict[str, Any]]:
        if not keys:
            return []
        now = self._clock()
        order = {event_id: place for place, (_, event_id) in enumerate(keys)}
        events = sorted(self._events.stored(replay.ref.plugin_id, keys), key=lambda e: order[e.event_id])
        return [
            {
                "plugin_id": replay.ref.plugin_id,
                "destination_id": replay.ref.destination_id,
                "message": segment_message(event),
                "queued_at": now,
                "received_at": event.received_at,  # a forgotten person's: not sent
                "replay_id": replay.replay_id,
            }
            for event in events
            if matches(destination, event)
        ]
