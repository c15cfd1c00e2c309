"""Replaying a destination's stored events of a range of days: the lake lists them in pages (DuckDB
over real Parquet files here; Athena's one query read a page per chunk), the events table gives
each whole, chunks are recorded once, each replayed message is sent once per replay even though it
was delivered before, and the replay is ``done`` when every message was sent, failed or skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.fakes.deliveries import FakeDestinations, FakeOutbox, FakeReplays
from tests.helpers import shop_event
from tests.unit.test_delivery import NOW, PUBLIC, FakeSender, hook, ok, status
from tests.unit.test_lake_questions import lake_of
from tracking.api_errors import NotFound, ValidationFailed
from tracking.destinations.admin import DestinationsAdmin
from tracking.destinations.delivery import Delivery, Envelope
from tracking.destinations.messages import segment_message
from tracking.destinations.models import DestinationRef
from tracking.destinations.replay import RUNNING_AGAIN_S, Replayer
from tracking.destinations.router import CachedDestinations
from tracking.lake.questions import Listing, ListingPage
from tracking.models.canonical import CanonicalEvent
from tracking.models.storage_failures import LakeQueryFailed, StorageUnavailable
from tracking.storage.lake_engines import AthenaLake, DuckDbLake

A = DestinationRef("shop", "a")
DAY = "2025-11-24"  # the UTC day of NOW


class ChunkQueue:
    """A queue that keeps what was sent and with which delay."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], int]] = []

    def send(self, bodies: Any, delay_s: int = 0) -> None:
        self.sent.extend((body, delay_s) for body in bodies)

    def take(self) -> list[dict[str, Any]]:
        bodies = [body for body, _ in self.sent]
        self.sent.clear()
        return bodies


class Events:
    """The events table's stored events (a deleted one is simply not there)."""

    def __init__(self, events: list[CanonicalEvent]) -> None:
        self.kept = {(e.user_id, e.event_id): e for e in events}

    def stored(self, plugin_id: str, keys: Any) -> list[CanonicalEvent]:
        return [self.kept[key] for key in keys if key in self.kept and self.kept[key].plugin_id == plugin_id]


class Setup:
    def __init__(
        self, tmp_path: Path, events: list[CanonicalEvent], in_lake: list[CanonicalEvent], **config: Any
    ):
        self.destinations = FakeDestinations()
        destination = hook("a", "hook.example.com")
        if config:
            destination = destination.model_copy(
                update={"config": destination.config.model_copy(update=config)}
            )
        self.destinations.save_destination(destination)
        self.jobs, self.outbox = FakeReplays(), FakeOutbox()
        self.deliveries, self.chunks = ChunkQueue(), ChunkQueue()
        self.replayer = Replayer(
            self.jobs,
            DuckDbLake(lake_of(tmp_path, in_lake)),
            Events(events),
            destinations=CachedDestinations(self.destinations, 5.0),
            deliveries=self.deliveries,
            chunks=self.chunks,
            counter=self.outbox,
            clock_ms=lambda: NOW,
            chunk=3,
        )
        self.admin = DestinationsAdmin(
            self.destinations, self.outbox, self.deliveries, lambda: NOW, replays=(self.jobs, self.chunks)
        )

    def run_chunks(self) -> int:
        runs = 0
        while bodies := self.chunks.take():
            for body in bodies:
                self.replayer.step(body)
                runs += 1
        return runs

    def deliver(self, sender: FakeSender) -> None:
        delivery = Delivery(
            CachedDestinations(self.destinations, 5.0),
            self.outbox,
            sender,
            lambda: NOW,
            max_age_s=86_400,
            resolver=lambda host, port: [PUBLIC[host]],
            replays=self.jobs,
        )
        bodies = json.loads(json.dumps(self.deliveries.take(), default=str))
        delivery.deliver([Envelope(f"q-{n}", 1, body) for n, body in enumerate(bodies)])


def events(count: int, **fields: Any) -> list[CanonicalEvent]:
    return [
        shop_event(
            user_id=f"u-{n % 3}", event_id=f"m:{n:02d}", message_id=f"msg-{n}", event_time=NOW + n, **fields
        )
        for n in range(count)
    ]


def test_a_replay_sends_each_stored_event_of_its_days_again_in_chunks_and_is_done_when_all_are_sent(
    tmp_path: Path,
) -> None:
    stored = events(7)
    crawler = shop_event(user_id="bot-1", event_id="m:bot", event_time=NOW, context={"bot": True})
    other_day = shop_event(user_id="u-9", event_id="m:old", event_time=NOW - 3 * 86_400_000)
    deleted = shop_event(user_id="u-8", event_id="m:gone", event_time=NOW)  # in the lake, gone since
    setup = Setup(tmp_path, [*stored, crawler, other_day], [*stored, crawler, other_day, deleted])
    started = setup.admin.replay("shop", "a", {"from": DAY, "to": DAY})
    replay_id = started["replay_id"]
    assert setup.admin.replay_status("shop", "a", replay_id)["status"] == "pending"
    assert setup.run_chunks() == 3  # 7 listed events, 3 a chunk
    queued = list(setup.deliveries.sent)
    assert [body["message"]["messageId"] for body, _ in queued] == [f"msg-{n}" for n in range(7)]
    assert all(body["replay_id"] == replay_id for body, _ in queued)
    assert queued[0][0]["message"] == json.loads(json.dumps(segment_message(stored[0]), default=str))
    # Delivered once before (by the router): a replay sends them again, with the same message id.
    for event in stored:
        setup.outbox.mark_delivered(A, [event.message_id or ""], NOW)
    sender = FakeSender({"hook.example.com": ok})
    setup.deliver(sender)
    assert sorted(sent["messageId"] for _, sent, _ in sender.sent) == sorted(f"msg-{n}" for n in range(7))
    shown = setup.admin.replay_status("shop", "a", replay_id)
    assert (shown["status"], shown["queued"], shown["sent"], shown["failed"]) == ("done", 7, 7, 0)
    assert setup.outbox.total(A)["pending"] == 0  # queued 7 pending, each settled


def test_a_chunk_run_twice_is_recorded_once_and_each_copy_is_sent_once(tmp_path: Path) -> None:
    stored = events(5)
    setup = Setup(tmp_path, stored, stored)
    replay_id = setup.admin.replay("shop", "a", {"from": DAY, "to": DAY})["replay_id"]
    (first,) = setup.chunks.take()
    # The queue delivered the chunk's message twice, to two runs side by side: both read the record
    # before either wrote it.
    read_before = setup.jobs.get(A, replay_id)
    setup.replayer.step(first)
    real_get = setup.jobs.get
    setup.jobs.get = lambda ref, replay_id: read_before  # type: ignore[method-assign]
    setup.replayer.step(first)
    setup.jobs.get = real_get  # type: ignore[method-assign]
    assert len(setup.chunks.sent) == 1  # the second run recorded nothing, queued no next chunk
    setup.replayer.step(first)  # and a third, later, sees the chunk recorded: nothing at all
    assert len(setup.chunks.sent) == 1
    assert len(setup.deliveries.sent) == 6
    setup.run_chunks()
    assert len(setup.deliveries.sent) == 8  # chunk 0's 3 twice, then 2
    sender = FakeSender({"hook.example.com": ok})
    setup.deliver(sender)
    assert len(sender.sent) == 5
    shown = setup.admin.replay_status("shop", "a", replay_id)
    assert (shown["status"], shown["queued"], shown["sent"]) == ("done", 5, 5)


def test_a_filter_narrows_a_replay_and_what_fails_or_is_forgotten_still_ends_it(tmp_path: Path) -> None:
    from tracking.destinations.models import DestinationFilter  # noqa: PLC0415

    stored = events(4)
    viewed = [
        shop_event(user_id="u-5", event_id=f"m:v{n}", key="Product Viewed", event_time=NOW + 50 + n)
        for n in range(2)
    ]
    setup = Setup(
        tmp_path, [*stored, *viewed], [*stored, *viewed], filter=DestinationFilter(events=("Product Viewed",))
    )
    replay_id = setup.admin.replay("shop", "a", {"from": DAY, "to": DAY})["replay_id"]
    setup.run_chunks()
    assert [body["message"]["event"] for body, _ in setup.deliveries.sent] == ["Product Viewed"] * 2
    setup.outbox.forget_ids("shop", ["u-5"], NOW + 1_000)
    setup.deliveries.sent = setup.deliveries.sent[:1]
    setup.deliver(FakeSender({"hook.example.com": ok}))
    shown = setup.admin.replay_status("shop", "a", replay_id)
    assert (shown["queued"], shown["sent"], shown["skipped"], shown["status"]) == (2, 0, 1, "pending")


def test_a_replays_failures_count_and_end_it(tmp_path: Path) -> None:
    stored = events(2)
    setup = Setup(tmp_path, stored, stored)
    replay_id = setup.admin.replay("shop", "a", {"from": DAY, "to": DAY})["replay_id"]
    setup.run_chunks()
    setup.deliver(FakeSender({"hook.example.com": status(410)}))
    shown = setup.admin.replay_status("shop", "a", replay_id)
    assert (shown["status"], shown["failed"], shown["sent"]) == ("done", 2, 0)


def test_a_recorded_chunk_whose_next_was_not_queued_queues_it_when_it_comes_back(tmp_path: Path) -> None:
    stored = events(5)
    setup = Setup(tmp_path, stored, stored)
    setup.admin.replay("shop", "a", {"from": DAY, "to": DAY})
    (first,) = setup.chunks.take()
    real_send = setup.chunks.send

    def down(bodies: Any, delay_s: int = 0) -> None:
        raise StorageUnavailable("The queue is unavailable; retry later")

    setup.chunks.send = down  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable):
        setup.replayer.step(first)  # recorded, but the next chunk's message was not queued
    setup.chunks.send = real_send  # type: ignore[method-assign]
    setup.replayer.step(first)  # the first comes back (it was not acknowledged)
    assert [body["chunk"] for body in setup.chunks.take()] == [1]
    setup.replayer.step(first)  # once more: the next is known to be queued now
    assert setup.chunks.take() == []


class Listings:
    def __init__(self, pages: list[ListingPage | Exception | None]) -> None:
        self.pages = pages

    def listing_page(
        self, listing: Listing, plugin_id: str, position: str | None, limit: int
    ) -> ListingPage | None:
        page = self.pages.pop(0)
        if isinstance(page, Exception):
            raise page
        return page


def test_a_listing_still_running_is_looked_at_again_and_one_that_fails_fails_the_replay(
    tmp_path: Path,
) -> None:
    setup = Setup(tmp_path, [], [])
    setup.replayer._lake = Listings([None, LakeQueryFailed("Bytes scanned limit was exceeded")])
    replay_id = setup.admin.replay("shop", "a", {"from": DAY, "to": DAY})["replay_id"]
    (first,) = setup.chunks.take()
    setup.replayer.step(first)
    assert setup.chunks.sent == [(first, RUNNING_AGAIN_S)]
    setup.run_chunks()
    shown = setup.admin.replay_status("shop", "a", replay_id)
    assert shown["status"] == "failed"
    assert "Bytes scanned" in shown["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": DAY}, "to"),
        ({"from": "2025-11-25", "to": DAY}, "from"),
        ({"from": "2024-01-01", "to": DAY}, "from"),  # over 400 days
        ({"from": "24-11-2025", "to": DAY}, "from"),
        ({"from": DAY, "to": DAY, "days": 3}, "body"),
        ([DAY, DAY], "body"),
    ],
)
def test_a_replay_outside_the_contract_is_a_422(tmp_path: Path, body: Any, field: str) -> None:
    setup = Setup(tmp_path, [], [])
    with pytest.raises(ValidationFailed) as refused:
        setup.admin.replay("shop", "a", body)
    assert refused.value.details[0]["field"] == field
    assert setup.chunks.sent == []
    assert setup.jobs.kept == {}


def test_a_disabled_destination_cannot_be_replayed_and_unknown_replays_are_404s(tmp_path: Path) -> None:
    setup = Setup(tmp_path, [], [], enabled=False)
    with pytest.raises(ValidationFailed):
        setup.admin.replay("shop", "a", {"from": DAY, "to": DAY})
    with pytest.raises(NotFound):
        setup.admin.replay("shop", "nope", {"from": DAY, "to": DAY})
    with pytest.raises(NotFound):
        setup.admin.replay_status("shop", "a", "0" * 32)
    with pytest.raises(NotFound):
        setup.admin.replay_status("shop", "a", "../x")


def test_the_local_lake_lists_a_range_in_pages_after_the_last_key_missing_and_repeating_none(
    tmp_path: Path,
) -> None:
    # Same event time for several: the id breaks the tie.
    stored = [shop_event(user_id=f"u-{n}", event_id=f"m:{n:02d}", event_time=NOW + n // 3) for n in range(10)]
    lake = DuckDbLake(lake_of(tmp_path, stored))
    listing = Listing(DAY, DAY)
    keys: list[tuple[str, str]] = []
    position = None
    for _ in range(10):
        page = lake.listing_page(listing, "shop", position, 4)
        assert page is not None
        keys += page.keys
        position = page.position
        if position is None:
            break
    assert keys == [(f"u-{n}", f"m:{n:02d}") for n in range(10)]
    assert lake.listing_page(Listing(DAY, DAY, types=("identify",)), "shop", None, 4) == ListingPage([], None)


def test_the_lake_lists_bot_events_only_for_a_plugin_that_counts_them(tmp_path: Path) -> None:
    stored = [
        shop_event(event_id="m:person", event_time=NOW),
        shop_event(event_id="m:crawler", event_time=NOW + 1, context={"bot": True}),
    ]
    lake = DuckDbLake(lake_of(tmp_path, stored))
    for bots, keys in ((False, [("u-1", "m:person")]), (True, [("u-1", "m:person"), ("u-1", "m:crawler")])):
        assert lake.listing_page(Listing(DAY, DAY, bots=bots), "shop", None, 10) == ListingPage(keys, None)


class PagedAthena:
    """Athena's API for one query whose answer is read a page at a time (``NextToken``)."""

    def __init__(self, rows: list[tuple[str, str]], polls: int) -> None:
        self.rows, self.polls = rows, polls
        self.started: list[dict[str, Any]] = []

    def start_query_execution(self, **request: Any) -> dict[str, Any]:
        self.started.append(request)
        return {"QueryExecutionId": "q-1"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        self.polls -= 1
        return {"QueryExecution": {"Status": {"State": "RUNNING" if self.polls >= 0 else "SUCCEEDED"}}}

    def get_query_results(
        self, QueryExecutionId: str, MaxResults: int, NextToken: str | None = None
    ) -> dict[str, Any]:
        header = [("user_id", "event_id")] if NextToken is None else []
        start = int(NextToken or 0)
        rows = [*header, *self.rows[start : start + MaxResults - len(header)]]
        following = start + MaxResults - len(header)
        page: dict[str, Any] = {
            "ResultSet": {"Rows": [{"Data": [{"VarCharValue": u}, {"VarCharValue": e}, {}]} for u, e in rows]}
        }
        if following < len(self.rows):
            page["NextToken"] = str(following)
        return page


def test_athena_lists_with_one_query_and_reads_its_answer_a_page_per_chunk() -> None:
    rows = [(f"u-{n}", f"m:{n}") for n in range(7)]
    fake = PagedAthena(rows, polls=1)
    lake = AthenaLake(lambda: fake, "wg", "db")
    listing = Listing(DAY, DAY, types=("track",), events=("it's",))
    first = lake.listing_page(listing, "shop", None, 3)
    assert first is not None
    assert first.keys == []
    (request,) = fake.started
    assert request["ExecutionParameters"] == ["'shop'", f"'{DAY}'", f"'{DAY}'", "false", "'track'", "'it''s'"]
    assert "ORDER BY event_time, event_id" in request["QueryString"]
    assert lake.listing_page(listing, "shop", first.position, 3) is None  # still running
    keys: list[tuple[str, str]] = []
    position = first.position
    while position is not None:
        page = lake.listing_page(listing, "shop", position, 3)
        assert page is not None
        keys += page.keys
        position = page.position
    assert keys == rows
    assert len(fake.started) == 1


def test_a_stack_without_a_lake_fails_each_replay_saying_so(tmp_path: Path) -> None:
    from tracking.destinations.replay import NoLake  # noqa: PLC0415

    setup = Setup(tmp_path, [], [])
    setup.replayer._lake = NoLake()
    replay_id = setup.admin.replay("shop", "a", {"from": DAY, "to": DAY})["replay_id"]
    setup.run_chunks()
    shown = setup.admin.replay_status("shop", "a", replay_id)
    assert (shown["status"], shown["error"]) == ("failed", "This stack has no lake to list the events from")
