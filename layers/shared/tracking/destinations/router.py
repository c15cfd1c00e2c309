"""The router: each stored event, for each of its plugin's destinations that wants it, becomes one
queue message (the delivery sends it). It reads the events table's changes as the lake does (the
Kinesis data stream of the table, a consumer of its own), so only stored events leave: a duplicate
or a refused call never reaches a destination.

A destination wants an event stored while it was enabled (``enabled_at``) that passes its filter;
bot events are sent only when the plugin's config counts them. A plugin's destinations are read
again when an event is newer than the copy a container keeps (``CachedDestinations``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tracking.destinations.messages import event_name, segment_message
from tracking.destinations.models import Counts, Destination, DestinationRef
from tracking.models.canonical import CanonicalEvent


class DestinationSource(Protocol):
    def destinations(self, plugin_id: str) -> list[Destination]: ...


class Destinations(Protocol):
    """One destination as it is now (``CachedDestinations``): the delivery's and the replay's view."""

    def destination(self, ref: DestinationRef) -> Destination | None: ...


class CurrentDestinations(Protocol):
    def destinations(self, plugin_id: str, as_of_ms: int | None = None) -> list[Destination]: ...


class Queue(Protocol):
    def send(self, bodies: Sequence[dict[str, Any]], delay_s: int = 0) -> None:
        """Queue every body (shown after ``delay_s``), or raise (nothing is known to be queued then)."""


class Counter(Protocol):
    def count(self, ref: DestinationRef, counts: Counts) -> None: ...


class CachedDestinations:
    """A plugin's destinations, kept ``cache_s`` seconds (the delivery reads them per destination).

    The router asks for them as they were when an event was stored (``as_of_ms``): a copy read before
    that is read again (consistently), so a destination saved a moment before the event was stored is
    never missed. A plugin is read again at most every ``min_interval_s`` per container; a read asked
    sooner waits out the rest of the interval, so each stays exact at bounded cost."""

    def __init__(
        self,
        source: DestinationSource,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        sleep: Callable[[float], None] = time.sleep,
        min_interval_s: float = 0.2,
    ) -> None:
        self._source = source
        self._cache_s = cache_s
        self._clock = clock
        self._wall_ms = wall_ms
        self._sleep = sleep
        self._min_interval_s = min_interval_s
        # plugin -> (monotonic time of the read, wall time it began, the destinations)
        self._kept: dict[str, tuple[float, int, list[Destination]]] = {}

    def destinations(self, plugin_id: str, as_of_ms: int | None = None) -> list[Destination]:
        kept = self._kept.get(plugin_id)
        now = self._clock()
        stale = kept is None or now - kept[0] >= self._cache_s
        behind = kept is not None and as_of_ms is not None and kept[1] < as_of_ms
        if stale or behind:
            if kept is not None and behind and not stale:
                self._sleep(max(0.0, kept[0] + self._min_interval_s - now))
            began = self._wall_ms()
            kept = (self._clock(), began, self._source.destinations(plugin_id))
            self._kept[plugin_id] = kept
        assert kept is not None
        return kept[2]

    def destination(self, ref: DestinationRef) -> Destination | None:
        for destination in self.destinations(ref.plugin_id):
            if destination.destination_id == ref.destination_id:
                return destination
        return None


def wants(destination: Destination, event: CanonicalEvent) -> bool:
    config = destination.config
    if not config.enabled or destination.enabled_at is None or event.received_at < destination.enabled_at:
        return False
    return matches(destination, event)


def matches(destination: Destination, event: CanonicalEvent) -> bool:
    """The event is one the destination is sent (a replay too): its filter passes, and it is no bot's
    unless the plugin's config counts bots (``bots: include``)."""
    if event.context.get("bot") is True and destination.bots != "include":
        return False
    return destination.config.filter.passes(event.kind, event_name(event))


class Router:
    def __init__(
        self, destinations: CurrentDestinations, queue: Queue, counter: Counter, clock_ms: Callable[[], int]
    ) -> None:
        self._destinations = destinations
        self._queue = queue
        self._counter = counter
        self._clock = clock_ms

    def route(self, events: Sequence[CanonicalEvent]) -> int:
        """Queue the messages of these stored events; how many. Raises if they could not be queued."""
        now = self._clock()
        bodies: list[dict[str, Any]] = []
        queued: dict[DestinationRef, int] = {}
        for event in events:
            known = self._destinations.destinations(event.plugin_id, event.received_at)
            chosen = [d for d in known if wants(d, event)]
            if not chosen:
                continue
            message = segment_message(event)
            for destination in chosen:
                bodies.append(
                    {
                        "plugin_id": event.plugin_id,
                        "destination_id": destination.destination_id,
                        "message": message,
                        "queued_at": now,
                        "received_at": event.received_at,  # a forgotten person's: not sent
                    }
                )
                queued[destination.ref] = queued.get(destination.ref, 0) + 1
        if bodies:
            self._queue.send(bodies)
            for ref, count in queued.items():
                self._counter.count(ref, Counts(pending=count))
        return len(bodies)
