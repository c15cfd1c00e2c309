"""Managing a plugin's destinations (the admin key; the route has resolved the plugin): save one after
checking its config and its address, list them with their counters, remove one, list a destination's
failures and send them all again."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tracking.api_errors import NotFound, ValidationFailed, validate
from tracking.destinations.addresses import AddressRefused, Resolver, resolve, target
from tracking.destinations.messages import delete_message
from tracking.destinations.models import (
    DESTINATION_ID_PATTERN,
    DESTINATIONS_MAX,
    Counts,
    Destination,
    DestinationConfig,
    DestinationRef,
    Failure,
)
from tracking.destinations.replay import ReplayJobs, start_replay
from tracking.destinations.router import Queue
from tracking.lake.questions import BadQuestion, replay_days

# A delete message is shown this long after the person's ids were marked forgotten: longer than a
# delivery's lease, so an event of theirs being sent when the deletion came is answered before it.
DELETE_MESSAGE_DELAY_S = 90
FAILURES_PAGE = 100
FAILURES_PAGE_MAX = 500
# A retry sends failures again in pages for at most this long, then answers how many are left.
RETRY_BUDGET_S = 15.0
_DESTINATION_ID = re.compile(DESTINATION_ID_PATTERN)
_REPLAY_ID = re.compile(r"[0-9a-f]{32}")
Cursor = tuple[int, str | None]


class DestinationStore(Protocol):
    def destinations(self, plugin_id: str) -> list[Destination]: ...
    def save_destination(self, destination: Destination) -> None: ...
    def delete_destination(self, plugin_id: str, destination_id: str) -> bool: ...


class DeliveryRecords(Protocol):
    def forget_ids(self, plugin_id: str, ids: Sequence[str], at: int) -> None: ...
    def stats(self, ref: DestinationRef) -> dict[str, Any]: ...
    def failures(
        self, ref: DestinationRef, start: Cursor, limit: int
    ) -> tuple[list[Failure], Cursor | None]: ...
    def remove_failures(self, ref: DestinationRef, message_ids: Sequence[str]) -> None: ...
    def count(self, ref: DestinationRef, counts: Counts) -> None: ...


def destination_id_of(raw: str) -> str:
    if not _DESTINATION_ID.fullmatch(raw):
        raise ValidationFailed(
            "The destination id is not valid",
            [{"field": "destination_id", "message": "1-64 characters of A-Z, a-z, 0-9, _ and -"}],
        )
    return raw


class DestinationsAdmin:
    def __init__(
        self,
        store: DestinationStore,
        records: DeliveryRecords,
        queue: Queue | None,
        clock_ms: Callable[[], int],
        *,
        allow_local: bool = False,
        resolver: Resolver = resolve,
        monotonic: Callable[[], float] = time.monotonic,
        replays: tuple[ReplayJobs, Queue] | None = None,
    ) -> None:
        self._store = store
        self._records = records
        self._queue = queue
        self._clock = clock_ms
        self._allow_local = allow_local
        self._resolver = resolver
        self._monotonic = monotonic
        self._replays = replays  # the replays' records, and the queue that runs their chunks

    def save(self, plugin_id: str, destination_id: str, payload: Any) -> dict[str, Any]:
        """Create or replace a destination; its address is checked now (and at every delivery)."""
        destination_id = destination_id_of(destination_id)
        config = validate(DestinationConfig, payload)
        url = config.url.rstrip("/") + "/v1/batch" if config.type == "segment" else config.url
        try:
            target(url, allow_local=self._allow_local, resolver=self._resolver)
        except AddressRefused as refused:
            raise ValidationFailed(
                "The URL may not be delivered to", [{"field": "url", "message": str(refused)}]
            ) from None
        existing = {d.destination_id: d for d in self._store.destinations(plugin_id)}
        if destination_id not in existing and len(existing) >= DESTINATIONS_MAX:
            detail = {
                "field": "destination_id",
                "message": f"a plugin has at most {DESTINATIONS_MAX} destinations",
            }
            raise ValidationFailed("Too many destinations", [detail])
        now = self._clock()
        previous = existing.get(destination_id)
        enabled_at = None
        if config.enabled:
            was_enabled = previous is not None and previous.config.enabled and previous.enabled_at is not None
            enabled_at = previous.enabled_at if was_enabled and previous is not None else now
        saved = Destination(
            plugin_id=plugin_id,
            destination_id=destination_id,
            config=config,
            created_at=previous.created_at if previous else now,
            updated_at=now,
            enabled_at=enabled_at,
        )
        self._store.save_destination(saved)
        return self._shown(saved)

    def listed(self, plugin_id: str) -> list[dict[str, Any]]:
        return [self._shown(destination) for destination in self._store.destinations(plugin_id)]

    def one(self, plugin_id: str, destination_id: str) -> dict[str, Any]:
        return self._shown(self._found(plugin_id, destination_id))

    def remove(self, plugin_id: str, destination_id: str) -> None:
        if not self._store.delete_destination(plugin_id, destination_id_of(destination_id)):
            raise NotFound("No such destination")

    def failures(
        self, plugin_id: str, destination_id: str, start: Cursor, limit: int
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        found = self._found(plugin_id, destination_id)
        page, following = self._records.failures(found.ref, start, min(max(limit, 1), FAILURES_PAGE_MAX))
        return [failure.listed() for failure in page], following

    def retry_failures(self, plugin_id: str, destination_id: str) -> dict[str, Any]:
        """Queue every failure again (each a fresh message: retried for the whole max age), page by
        page; a page is removed from the failures once queued. Answers how many, and whether some are
        left for another call (past the time one request may take)."""
        found = self._found(plugin_id, destination_id)
        if self._queue is None:
            raise NotFound("Destinations are not enabled in this stack")
        started = self._monotonic()
        retried = 0
        start: Cursor | None = (0, None)
        while start is not None:
            page, start = self._records.failures(found.ref, start, FAILURES_PAGE)
            if page:
                now = self._clock()
                self._queue.send([{**failure.message, "queued_at": now} for failure in page])
                self._records.remove_failures(found.ref, [failure.message_id for failure in page])
                self._records.count(found.ref, Counts(failed=-len(page), pending=len(page)))
                retried += len(page)
            if self._monotonic() - started > RETRY_BUDGET_S:
                return {"retried": retried, "remaining": start is not None}
        return {"retried": retried, "remaining": False}

    def replay(self, plugin_id: str, destination_id: str, payload: Any) -> dict[str, Any]:
        """Start sending again the destination's stored events of ``from``..``to`` (UTC days of
        event time) that its filter passes: the replay's id (its chunks run on the replay queue)."""
        found = self._found(plugin_id, destination_id)
        if self._replays is None:
            raise NotFound("Replays are not enabled in this stack")
        if not isinstance(payload, dict) or set(payload) - {"from", "to"}:
            raise ValidationFailed(
                "The replay is not valid", [{"field": "body", "message": 'the body is {"from", "to"}'}]
            )
        try:
            days = replay_days(payload.get("from"), payload.get("to"))
        except BadQuestion as bad:
            raise ValidationFailed(
                "The replay is not valid", [{"field": bad.field, "message": str(bad)}]
            ) from None
        if not found.config.enabled:
            raise ValidationFailed(
                "The destination is disabled", [{"field": "enabled", "message": "enable it to replay to it"}]
            )
        jobs, chunks = self._replays
        return {"replay_id": start_replay(jobs, chunks, found.ref, days, self._clock()).replay_id}

    def replay_status(self, plugin_id: str, destination_id: str, replay_id: str) -> dict[str, Any]:
        found = self._found(plugin_id, destination_id)
        replay = None
        if self._replays is not None and _REPLAY_ID.fullmatch(replay_id):
            replay = self._replays[0].get(found.ref, replay_id)
        if replay is None:
            raise NotFound("No such replay")
        return replay.view()

    def forget_person(
        self, plugin_id: str, deletion_id: str, user_id: str, ids: Sequence[str], at: int
    ) -> None:
        """A person's deletion reaches the destinations: none of their events stored before ``at`` is
        sent any more (pending retries and failures included), then every webhook gets the signed
        ``delete`` message, so the tools downstream can forget them too."""
        self._records.forget_ids(plugin_id, ids, at)
        webhooks = [
            d for d in self._store.destinations(plugin_id) if d.config.type == "webhook" and d.config.enabled
        ]
        if not webhooks or self._queue is None:
            return
        message = delete_message(user_id, [i for i in ids if i != user_id], deletion_id)
        bodies = [
            {"plugin_id": plugin_id, "destination_id": d.destination_id, "message": message, "queued_at": at}
            for d in webhooks
        ]
        self._queue.send(bodies, delay_s=DELETE_MESSAGE_DELAY_S)
        for destination in webhooks:
            self._records.count(destination.ref, Counts(pending=1))

    def _found(self, plugin_id: str, destination_id: str) -> Destination:
        wanted = destination_id_of(destination_id)
        for destination in self._store.destinations(plugin_id):
            if destination.destination_id == wanted:
                return destination
        raise NotFound("No such destination")

    def _shown(self, destination: Destination) -> dict[str, Any]:
        return {**destination.view(), **self._records.stats(destination.ref)}
