"""Forgetting a person: their events, aggregates, profiles and links, removed step by step.

A deletion is a chain of steps stored in the events table; the stream hands each new step to the
forget function, which removes a bounded amount (``STEP_ITEMS`` items or ``STEP_SECONDS``), then writes
the next step. However many events a person has, no invocation outlasts its timeout, and one that
is interrupted is delivered again and resumes: removing what is already gone changes nothing.

Per id: the user's partition (its events, with the claims of the ids its clients chose; and index
items an older version wrote, listing events it stored under their own ids, which are removed with
them), then its aggregates and profile (the ids of such events still listed on them first). After
the last id, the plugin's recorded rejections lose the refused calls that name one of the ids
(their counts stay). Then a sweep waits until every container has seen the suppression
(``CONFIG_CACHE_SECONDS``) and goes over every id and the rejections once more, for calls stored
meanwhile (calls of a suppressed id that reach the stream later are removed by the aggregator).
Last, the lake: once every row stored before the request has had time to reach it (its flush
interval and a margin after the request), each file holding a row of an id is rewritten without
them, a few files a step, until no file holds one. Daily rollups stay: they count, and name nobody.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from tracking.destinations.models import DestinationRef, Failure
from tracking.models.aggregates import UserItems
from tracking.models.people import DeletionStep, PartitionPage, ProfileState
from tracking.models.rejections import RejectionRecord
from tracking.models.request import is_client_named
from tracking.models.storage_failures import Conflict

logger = logging.getLogger(__name__)

STEP_ITEMS = 2_000
STEP_SECONDS = 20.0
PAGE_ITEMS = 500
SWEEP_MARGIN_MS = 2_000
LAKE_FILE_ITEMS = 100  # what rewriting one file counts against a step's budget (20 files a step)
# After the flush interval, a fifth of it more (2 s at least): a delivery retried, a batch late.
LAKE_MARGIN_MIN_MS = 2_000


class Steps(Protocol):
    def write_step(self, step: DeletionStep) -> None: ...
    def remove_steps(self, plugin_id: str, deletion_id: str, before: int) -> None: ...


class Events(Protocol):
    def partition(self, plugin_id: str, user_id: str, start: str | None, limit: int) -> PartitionPage: ...
    def delete_named(self, plugin_id: str, event_ids: Sequence[str]) -> None: ...
    def delete_in_partition(self, plugin_id: str, user_id: str, sort_keys: Sequence[str]) -> None: ...


class RejectionPages(Protocol):
    def page(
        self, plugin_id: str, after: str | None, max_records: int
    ) -> tuple[list[tuple[str, RejectionRecord]], str | None]: ...
    def replace(self, sk: str, record: RejectionRecord) -> None: ...


class LakeEraser(Protocol):
    """The lake's files holding rows of some ids, and one file rewritten without them."""

    def holding(self, plugin_id: str, ids: Sequence[str]) -> list[str] | None: ...  # None: still looking
    def erase(self, plugin_id: str, file: str, ids: Sequence[str]) -> int: ...  # rows removed


class DeliveryFailures(Protocol):
    """The messages a plugin's destinations could not take (they hold the events they carried)."""

    def page(
        self, plugin_id: str, cursor: str | None, limit: int
    ) -> tuple[list[tuple[DestinationRef, Failure]], str | None]: ...
    def remove(self, ref: DestinationRef, message_ids: Sequence[str]) -> None: ...


class PeopleStore(Protocol):
    def user_items(self, plugin_id: str, user_id: str) -> UserItems: ...
    def delete_user_items(self, plugin_id: str, user_id: str, limit: int) -> tuple[int, int, bool]: ...
    def get_profile(self, plugin_id: str, user_id: str) -> ProfileState | None: ...
    def save(self, state: ProfileState) -> None: ...


class LiveRings(Protocol):
    def forget(self, plugin_id: str, ids: Sequence[str], now_ms: int) -> int: ...


class Forgetter:
    def __init__(
        self,
        steps: Steps,
        events: Events,
        people: PeopleStore,
        rejections: RejectionPages,
        *,
        cache_seconds: float,
        lake: LakeEraser | None = None,
        lake_flush_seconds: float = 0.0,
        failures: DeliveryFailures | None = None,
        live: LiveRings | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._lake = lake
        self._failures = failures
        self._live = live
        flush_ms = int(lake_flush_seconds * 1000)
        self._lake_delay_ms = flush_ms + max(LAKE_MARGIN_MIN_MS, flush_ms // 5)
        self._steps = steps
        self._events = events
        self._people = people
        self._rejections = rejections
        self._cache_ms = int(cache_seconds * 1000)
        self._clock = clock
        self._sleep = sleep

    def run(self, step: DeletionStep) -> DeletionStep:
        """Do one step's work and write the next step (or the last, ``done``); returns it."""
        started = self._clock()
        work = dataclasses.replace(step, step=step.step + 1)
        budget = STEP_ITEMS
        while not work.done and budget > 0 and self._clock() - started < STEP_SECONDS:
            work, spent = self._advance(work)
            budget -= spent
        if work.done:
            self._unlink(step)
            # The finished deletion keeps its counts, not the ids it forgot.
            work = dataclasses.replace(work, ids=(), user_id="", cursor=None)
        self._steps.write_step(work)
        if work.done:
            self._steps.remove_steps(work.plugin_id, work.deletion_id, before=work.step)
        return work

    def _advance(self, work: DeletionStep) -> tuple[DeletionStep, int]:
        if work.phase in ("sweep", "lake"):
            wait_ms = work.sweep_after - int(self._clock() * 1000)
            if wait_ms > 0:
                self._sleep(min(wait_ms / 1000, STEP_SECONDS / 2))
                return work, 0
            if work.phase == "lake":
                return self._lake_files(work)
            return dataclasses.replace(work, phase="events", position=0, cursor=None, swept=True), 0
        if work.phase == "rejections":
            return self._rejections_page(work)
        if work.phase == "failures":
            return self._failures_page(work)
        if work.position >= len(work.ids):
            return dataclasses.replace(work, phase="rejections", cursor=None), 0
        user_id = work.ids[work.position]
        if work.phase == "events":
            return self._events_page(work, user_id)
        return self._aggregates_page(work, user_id)

    def _events_page(self, work: DeletionStep, user_id: str) -> tuple[DeletionStep, int]:
        page = self._events.partition(work.plugin_id, user_id, work.cursor, PAGE_ITEMS)
        named = [event_id for event_id, _ in page.named]
        claimed = [event.event_id for event in page.events if is_client_named(event.event_id)]
        # What sits under the events' own ids first (the events an index lists, the claims of those in
        # the partition), then the partition's items: an interrupted step finds them again.
        self._events.delete_named(work.plugin_id, [*named, *claimed])
        self._events.delete_in_partition(work.plugin_id, user_id, page.sort_keys)
        removed = len(named) + len(page.events)
        following = page.following
        if following is None:
            next_work = dataclasses.replace(work, phase="aggregates", cursor=None)
        else:
            next_work = dataclasses.replace(work, cursor=following)
        spent = len(page.sort_keys) + len(named)
        return dataclasses.replace(next_work, removed_events=work.removed_events + removed), spent

    def _aggregates_page(self, work: DeletionStep, user_id: str) -> tuple[DeletionStep, int]:
        states, profile = self._people.user_items(work.plugin_id, user_id)
        named = [event_id for state in states for event_id, _ in state.pending_ids]
        if profile is not None:
            named += [event_id for event_id, _ in profile.pending_ids]
        self._events.delete_named(work.plugin_id, named)
        aggregates, profiles, more = self._people.delete_user_items(work.plugin_id, user_id, PAGE_ITEMS)
        counted = dataclasses.replace(
            work,
            removed_events=work.removed_events + len(named),
            removed_aggregates=work.removed_aggregates + aggregates,
            removed_profiles=work.removed_profiles + profiles,
        )
        if more:
            return counted, aggregates + profiles + len(named)
        following = dataclasses.replace(counted, phase="events", position=work.position + 1, cursor=None)
        return following, aggregates + profiles + len(named)

    def _rejections_page(self, work: DeletionStep) -> tuple[DeletionStep, int]:
        """One page of the plugin's recorded rejections, each kept without the refused calls that name
        one of the ids; after the last page, done (or the sweep, when suppressing)."""
        records, following = self._rejections.page(work.plugin_id, work.cursor, PAGE_ITEMS)
        removed = 0
        for sk, record in records:
            kept = tuple(r for r in record.rejections if not r.mentions(work.ids))
            if len(kept) < len(record.rejections):
                removed += len(record.rejections) - len(kept)
                self._rejections.replace(sk, dataclasses.replace(record, rejections=kept))
        counted = dataclasses.replace(work, removed_rejections=work.removed_rejections + removed)
        if following is not None:
            return dataclasses.replace(counted, cursor=following), len(records) + removed
        if self._failures is not None and not work.swept:
            return dataclasses.replace(counted, phase="failures", cursor=None), len(records) + removed
        return self._after_records(counted), len(records) + removed

    def _failures_page(self, work: DeletionStep) -> tuple[DeletionStep, int]:
        """One page of the plugin's destinations' failures: those carrying an event of the person are
        removed (the delivery never sends them again either)."""
        assert self._failures is not None  # the phase is only entered with them
        page, following = self._failures.page(work.plugin_id, work.cursor, PAGE_ITEMS)
        theirs: dict[DestinationRef, list[str]] = {}
        for ref, failure in page:
            message = failure.message.get("message", {})
            if {message.get("userId"), message.get("anonymousId")} & set(work.ids) and message.get(
                "type"
            ) != "delete":
                theirs.setdefault(ref, []).append(failure.message_id)
        for ref, message_ids in theirs.items():
            self._failures.remove(ref, message_ids)
        if following is not None:
            return dataclasses.replace(work, cursor=following), len(page)
        return self._after_records(work), len(page)

    def _after_records(self, work: DeletionStep) -> DeletionStep:
        """After the records that mention the person, the live view's rings (again after the sweep:
        calls that came in meanwhile); then the sweep (when suppressing), else the lake."""
        if self._live is not None:
            self._live.forget(work.plugin_id, work.ids, int(self._clock() * 1000))
        if work.swept or not work.suppress:
            return self._to_lake(work)
        after = int(self._clock() * 1000) + self._cache_ms + SWEEP_MARGIN_MS
        return dataclasses.replace(work, phase="sweep", sweep_after=after, cursor=None)

    def _to_lake(self, work: DeletionStep) -> DeletionStep:
        """The last phase: the lake (none without one), once every row the person stored before the
        request can have reached it."""
        if self._lake is None:
            return dataclasses.replace(work, phase="done", cursor=None)
        after = max(work.requested_at + self._lake_delay_ms, int(self._clock() * 1000))
        return dataclasses.replace(work, phase="lake", sweep_after=after, cursor=None)

    def _lake_files(self, work: DeletionStep) -> tuple[DeletionStep, int]:
        assert self._lake is not None  # the phase is only entered with a lake
        files = self._lake.holding(work.plugin_id, work.ids)
        if files is None:  # the search is still running: look again in a moment
            self._sleep(1.0)
            return work, 0
        if not files:
            return dataclasses.replace(work, phase="done", cursor=None), 0
        # One file at a time: a rewrite may wait on its engine, and the step's clock is checked between.
        removed = self._lake.erase(work.plugin_id, files[0], work.ids)
        counted = dataclasses.replace(work, removed_lake_rows=work.removed_lake_rows + removed)
        return counted, LAKE_FILE_ITEMS

    def _unlink(self, step: DeletionStep) -> None:
        """An id forgotten from a user it was linked into leaves that user's list of ids."""
        parent = step.merged_into
        if not step.ids or parent is None:
            return
        forgotten = set(step.ids)
        for _ in range(3):
            profile = self._people.get_profile(step.plugin_id, parent)
            if profile is None or not forgotten & set(profile.anonymous_ids):
                return
            profile.anonymous_ids = [i for i in profile.anonymous_ids if i not in forgotten]
            try:
                self._people.save(profile)
                return
            except Conflict:
                continue
        logger.warning("forgotten id still listed on its user", extra={"deletion_id": step.deletion_id})
