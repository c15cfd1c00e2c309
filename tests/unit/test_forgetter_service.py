"""Forgetting a person through the forget service's ports (fakes): every step bounded, an interrupted
step resumed, a person's events, index items, aggregates, profiles, funnel and refused calls gone,
the user they were linked into no longer listing them; rollups kept. The handler on moto is in
tests/integration/test_people.py and test_deletion_reaches_everything.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack.fakes.aggregates import FakeAggregates
from devstack.fakes.control import FakeControl
from devstack.fakes.deliveries import FakePluginFailures
from devstack.fakes.events import FakeDeletions, FakeEvents, FakeRejections
from devstack.fakes.stream import FakeStream
from devstack.local.builders import canonical
from devstack.local.lake_sql import run_sql
from tests.helpers import identify_call, segment_call
from tests.unit.test_lake_questions import lake_of
from tracking.aggregate.aggregator import Aggregator
from tracking.destinations.models import DestinationRef, Failure
from tracking.forget.service import PAGE_ITEMS, STEP_ITEMS, Forgetter
from tracking.models.canonical import CanonicalEvent
from tracking.models.people import DeletionStep
from tracking.models.rejections import Rejection, RejectionRecord
from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.lake_erasers import LocalLakeEraser

NOW = 1_764_016_800_000


@dataclass
class People:
    control: FakeControl = field(default_factory=FakeControl)
    events: FakeEvents = field(default_factory=FakeEvents)
    aggregates: FakeAggregates = field(default_factory=FakeAggregates)
    now: float = NOW / 1000
    meanwhile: Callable[[], None] | None = None  # what happens while the forgetter waits
    lake: LocalLakeEraser | None = None  # the lake a deletion rewrites last (flushed every 5 s)
    failures: FakePluginFailures = field(default_factory=FakePluginFailures)

    def __post_init__(self) -> None:
        self.rejections = FakeRejections(self.events.table)
        self.deletions = FakeDeletions(self.events.table)
        self.forgetter = Forgetter(
            self.deletions,
            self.events,
            self.aggregates,
            self.rejections,
            cache_seconds=5,
            lake=self.lake,
            lake_flush_seconds=5,
            failures=self.failures,
            clock=lambda: self.now,
            sleep=self.sleep,
        )

    def sleep(self, seconds: float) -> None:
        if self.meanwhile is not None:
            self.meanwhile()
        self.now += seconds

    def store(self, events: list[CanonicalEvent]) -> None:
        self.events.put_all(events)
        aggregator = Aggregator(
            self.aggregates, self.control, index=self.events, rejections=self.rejections, workers=1
        )
        assert FakeStream(self.events.table).deliver(aggregator.process) == {}

    def forget(self, first: DeletionStep, *, most: int = 100) -> tuple[DeletionStep, int]:
        """Run the steps as the stream hands them over, until done; the last step and how many."""
        step, count = first, 0
        while not step.done:
            step = self.forgetter.run(step)
            count += 1
            assert count < most
        return step, count


def visits(user: str, count: int, *, named: bool = False, start: int = 0) -> list[CanonicalEvent]:
    return [
        canonical(
            "test",
            None,
            user=user,
            at=NOW + start + n,
            event_id=f"msg-{user}-{n}" if named else f"g:{user}-{start + n:08d}",
            dialect="segment" if named else "plugin",
        )
        for n in range(count)
    ]


def deletion(*ids: str, merged_into: str | None = None, suppress: bool = False) -> DeletionStep:
    return DeletionStep(
        plugin_id="p1",
        deletion_id="del_1",
        step=1,
        user_id=ids[0],
        ids=ids,
        requested_at=NOW,
        suppress=suppress,
        merged_into=merged_into,
    )


def users_left(people: People) -> set[str]:
    return {event.user_id for event in people.events.events()} | {
        s.user_id for s in people.aggregates.stored()
    }


def test_a_person_is_forgotten_whole_and_others_are_kept() -> None:
    people = People()
    people.store(visits("gone", 30) + visits("gone", 40, named=True) + visits("kept", 5))
    rollups_before = Counter(
        {item["sk"]["S"]: item["count"]["N"] for item in people.aggregates.table.all_items() if "day" in item}
    )
    last, _ = people.forget(deletion("gone"))
    assert users_left(people) == {"kept"}
    assert (last.removed_events, last.removed_aggregates) == (70, 1)
    assert last.ids == ()  # the finished deletion keeps counts, not ids
    rollups_after = Counter(
        {item["sk"]["S"]: item["count"]["N"] for item in people.aggregates.table.all_items() if "day" in item}
    )
    assert rollups_after == rollups_before  # counts name nobody


def test_no_step_does_more_than_its_budget() -> None:
    people = People()
    people.store(visits("big", STEP_ITEMS + PAGE_ITEMS))
    last, steps = people.forget(deletion("big"))
    assert steps >= 2
    assert last.removed_events == STEP_ITEMS + PAGE_ITEMS
    assert users_left(people) == set()


def test_an_interrupted_step_is_delivered_again_and_resumes() -> None:
    people = People()
    people.store(visits("gone", 1_200))
    people.events.table.fail_next(1)  # the first delete of the first step fails
    first = deletion("gone")
    with pytest.raises(StorageUnavailable):
        people.forgetter.run(first)
    last, _ = people.forget(first)  # the stream delivers the same step again
    assert users_left(people) == set()
    assert last.removed_events == 1_200


def test_a_linked_id_leaves_its_users_list_and_its_refused_calls_go() -> None:
    people = People()
    people.store(
        [
            identify_call("bob", "anon-7", at=NOW, event_id="m-1"),
            *(
                segment_call("test", "anon-7", at=NOW + n, event_id=f"m-a{n}", anonymous_id="anon-7")
                for n in range(3)
            ),
        ]
    )
    linked = people.aggregates.get_profile("p1", "bob")
    assert linked is not None
    assert linked.anonymous_ids == ["anon-7"]
    people.rejections.record(
        RejectionRecord(
            plugin_id="p1",
            at=NOW,
            dialect="segment",
            rejections=(
                Rejection("VALIDATION", "bad", (), '{"anonymousId":"anon-7"}'),
                Rejection("VALIDATION", "bad", (), '{"anonymousId":"someone-else"}'),
            ),
            counts={"VALIDATION": 2},
        )
    )
    last, _ = people.forget(deletion("anon-7", merged_into="bob"))
    bob = people.aggregates.get_profile("p1", "bob")
    assert bob is not None
    assert bob.anonymous_ids == []
    assert last.removed_rejections == 1
    (record,) = people.rejections.records()
    assert [r.payload for r in record.rejections] == ['{"anonymousId":"someone-else"}']
    assert record.counts == {"VALIDATION": 2}


def test_a_suppressing_deletion_sweeps_again_after_every_cache_has_seen_it() -> None:
    people = People()
    people.store(visits("gone", 10))
    late = visits("gone", 4, start=100)  # stored by a container that did not know yet

    def meanwhile() -> None:
        if late:
            people.events.put_all(late)
            late.clear()

    people.meanwhile = meanwhile
    last, _ = people.forget(deletion("gone", suppress=True))
    assert last.swept
    assert not late  # the sweep waited
    assert users_left(people) == set()
    assert last.removed_events == 14


def test_a_deletion_rewrites_the_lake_once_every_row_of_the_person_can_be_in_it(tmp_path: Path) -> None:
    # Given a lake holding the person's rows (as a user and as an anonymous id) and another's, over
    # two days and two plugins
    events = [
        canonical("test", None, user="gone", at=NOW, event_id="g:1", dialect="plugin"),
        canonical("test", None, user="kept", at=NOW, event_id="g:2", dialect="plugin"),
        canonical("test", None, user="gone", at=NOW + 86_400_000, event_id="g:3", dialect="plugin"),
        canonical("test", None, user="kept", at=NOW + 86_400_000, event_id="g:4", dialect="plugin"),
    ]
    events.append(events[1].model_copy(update={"event_id": "g:5", "anonymous_id": "anon-gone"}))
    events.append(events[0].model_copy(update={"plugin_id": "p2", "event_id": "g:6"}))
    lake = lake_of(tmp_path, events)
    eraser = LocalLakeEraser(lake)
    people = People(lake=eraser)
    # When the person and their anonymous id are forgotten
    last, _ = people.forget(deletion("gone", "anon-gone"))
    # Then the lake was rewritten after its flush interval and margin, and holds none of their rows
    assert people.now * 1000 >= NOW + 7_000
    assert last.removed_lake_rows == 3
    assert eraser.holding("p1", ["gone", "anon-gone"]) == []
    left = run_sql(lake, "SELECT plugin_id, event_id FROM events ORDER BY event_id")[1]
    assert left == [("p1", "g:2"), ("p1", "g:4"), ("p2", "g:6")]  # another plugin's "gone" is kept


def test_a_file_left_with_no_row_is_removed_and_one_outside_the_plugin_is_never_touched(
    tmp_path: Path,
) -> None:
    event = canonical("test", None, user="gone", at=NOW, event_id="g:1", dialect="plugin")
    lake = lake_of(tmp_path, [event, event.model_copy(update={"plugin_id": "p2"})])
    eraser = LocalLakeEraser(lake)
    (only,) = eraser.holding("p1", ["gone"]) or []
    other = next(iter(eraser.holding("p2", ["gone"]) or []))
    assert eraser.erase("p1", other, ["gone"]) == 0  # the file of another plugin
    assert eraser.erase("p1", only, ["gone"]) == 1
    assert not Path(only).exists()
    assert Path(other).exists()


def test_a_deletion_removes_the_destinations_failures_that_carry_the_persons_events() -> None:
    people = People()
    refs = [DestinationRef("p1", "crm"), DestinationRef("p1", "hook"), DestinationRef("p2", "crm")]

    def failure(n: int, **message: object) -> Failure:
        return Failure(
            f"m-{n}",
            1,
            500,
            "HTTP 500",
            NOW,
            {"message": {"type": "track", "messageId": f"m-{n}", **message}},
        )

    kept = {
        (refs[0], "m-1"): failure(1, userId="gone"),
        (refs[0], "m-2"): failure(2, userId=None, anonymousId="anon-gone"),
        (refs[0], "m-3"): failure(3, userId="kept"),
        (refs[1], "m-4"): failure(4, userId="gone"),
        (refs[1], "m-5"): Failure(
            "m-5",
            1,
            410,
            "HTTP 410",
            NOW,
            {"message": {"type": "delete", "userId": "gone", "messageId": "m-5"}},
        ),
        (refs[2], "m-6"): failure(6, userId="gone"),  # another plugin's "gone"
    }
    people.failures.kept.update(kept)
    people.forget(deletion("gone", "anon-gone"))
    assert sorted(message_id for _, message_id in people.failures.kept) == ["m-3", "m-5", "m-6"]
