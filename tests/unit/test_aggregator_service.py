"""The aggregator through its ports: in-memory fakes (devstack/fakes) instead of DynamoDB, so replays,
conflicts between containers and failed writes run by the thousand in seconds. The same rules hold on
moto and DynamoDB Local in tests/integration and tests/e2e."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from devstack.fakes.aggregates import FakeAggregates
from devstack.fakes.control import FakeControl
from devstack.fakes.events import FakeEvents, FakeRejections
from devstack.fakes.stream import FakeStream
from devstack.local.builders import canonical
from tests.helpers import identify_call
from tests.replay import BASE_TIME, PUBLISHED, Scenario, clean_pass, naive_counts, outcome_of_items, scenarios
from tracking.aggregate.aggregator import Aggregator
from tracking.aggregate.batch import BlockedByEarlierFailure
from tracking.aggregate.fold import StreamRecord, day_of
from tracking.aggregate.ports import CurrentConfigs
from tracking.keys import AB_CONVERSIONS_KEY, AB_USERS_KEY, REFUNDS_KEY, client_id_pk, event_pk, funnel_key
from tracking.models.aggregates import RollupState
from tracking.models.canonical import CanonicalEvent
from tracking.models.funnel import FUNNEL, FunnelState
from tracking.models.storage_failures import Conflict, StorageUnavailable
from tracking.storage.aggregate_items import funnel_from_item
from tracking.storage.events import stored_event_item
from tracking.storage.rollup_items import rollup_from_item


@dataclass
class World:
    """One deployment's tables in memory, and its aggregate function's containers."""

    control: FakeControl = field(default_factory=lambda: FakeControl(configs={"p1": PUBLISHED}))
    events: FakeEvents = field(default_factory=FakeEvents)
    aggregates: FakeAggregates = field(default_factory=FakeAggregates)
    batch_size: int = 100

    def __post_init__(self) -> None:
        self.rejections = FakeRejections(self.events.table)  # recorded rejections sit in the events table
        self.stream = FakeStream(self.events.table, batch_size=self.batch_size)

    def container(self) -> Aggregator:
        return Aggregator(
            self.aggregates,
            self.control,
            index=self.events,
            rejections=self.rejections,
            clock=lambda: BASE_TIME / 1000,
            workers=1,
        )

    def counts(self) -> Counter[tuple[str, str, str]]:
        return Counter({state.identity: state.count for state in self.aggregates.stored()})

    def rollups(self) -> list[RollupState]:
        return [
            rollup_from_item(item)
            for item in self.aggregates.table.all_items()
            if "day" in item and "ab_group" in item
        ]

    def funnels(self) -> list[FunnelState]:
        return [funnel_from_item(item) for item in self.aggregates.table.all_items() if "done" in item]


def events_of(
    count: int, *, users: int = 3, keys: Sequence[str] = ("emoji", "fruit", "score", "test")
) -> list[CanonicalEvent]:
    values = {"emoji": "🎉", "fruit": "pears", "score": Decimal(5), "test": None}
    return [
        canonical(
            keys[n % len(keys)],
            values[keys[n % len(keys)]],
            user=f"u{n % users}",
            at=BASE_TIME + n,
            event_id=f"g:{n:08d}",
        )
        for n in range(count)
    ]


def test_each_stored_event_is_counted_once() -> None:
    world = World(batch_size=7)
    stored = events_of(40)
    world.events.put_all(stored)
    assert world.stream.deliver(world.container().process) == {}
    assert world.counts() == Counter((e.plugin_id, e.key, e.user_id) for e in stored)
    assert sum(rollup.count for rollup in world.rollups()) == 40


def test_a_batch_delivered_again_changes_nothing() -> None:
    world = World(batch_size=10)
    world.events.put_all(events_of(30))
    container = world.container()
    world.stream.deliver(container.process)
    before = dict(world.aggregates.table.partitions), world.aggregates.table.writes, world.counts()
    for shard, batch in world.stream.delivered:  # by the same container, and by a fresh one
        assert container.process(shard, batch) == {}
        assert world.container().process(shard, batch) == {}
    after = dict(world.aggregates.table.partitions), world.aggregates.table.writes, world.counts()
    assert after == before


def test_a_stale_copy_fails_its_write_and_is_folded_again() -> None:
    world = World(batch_size=5)
    stored = events_of(15, users=1, keys=("test",))
    world.events.put_all(stored)
    world.stream.pull()
    first, second = world.container(), world.container()
    ((shard, records),) = world.stream.pending.items()
    first.process(shard, records[:5])  # keeps version 1 of the aggregate
    second.process(shard, records[5:10])  # writes version 2
    assert first.process(shard, records[10:]) == {}  # its copy is stale: refused, read again, folded again
    assert world.aggregates.conflicts >= 1
    assert world.counts() == Counter({("p1", "test", "u0"): 15})


def test_a_failed_write_fails_its_records_and_the_retry_counts_them_once() -> None:
    world = World(batch_size=20)
    world.events.put_all(events_of(20))
    world.stream.pull()
    ((shard, records),) = world.stream.pending.items()
    container = world.container()
    world.aggregates.table.fail_next(2)
    failures = container.process(shard, records)
    assert failures
    assert {type(error) for error in failures.values()} <= {StorageUnavailable, BlockedByEarlierFailure}
    assert StorageUnavailable in {type(error) for error in failures.values()}
    assert world.stream.deliver(container.process) == {}
    assert world.counts() == Counter((e.plugin_id, e.key, e.user_id) for e in events_of(20))


def test_an_unreadable_config_fails_the_whole_batch_and_nothing_is_written() -> None:
    world = World()
    world.events.put_all(events_of(5))
    world.stream.pull()
    ((shard, records),) = world.stream.pending.items()
    world.control.unavailable = True
    assert set(world.container().process(shard, records)) == {record.seq for record in records}
    assert len(world.aggregates.table) == 0


# -- replays: any delivery, any faults, two containers: one clean pass ------------------------------------


def deliver_with_faults(world: World, scenario: Scenario) -> None:
    """Each shard's records in batches, Lambda's way (retried from the lowest failed record), by two
    containers taking turns at random, with failed reads and writes and lost answers (the batch is
    delivered again) in the first invocations."""
    rng = random.Random(scenario.seed)
    containers = [world.container(), world.container()]
    invocations = 0

    def faults(operation: str) -> None:
        if invocations > scenario.faulty_invocations:
            return
        rate = scenario.put_failure_rate if operation == "write" else scenario.get_failure_rate
        if rng.random() < rate:
            raise StorageUnavailable("injected")

    world.aggregates.table.faults = faults
    for shard, planned in scenario.shards.items():
        pending = [StreamRecord(p.seq, "INSERT", p.event) for p in planned if p.event is not None]
        while pending:
            batch = pending[: scenario.batch_size]
            invocations += 1
            failures: Mapping[int, BaseException] = rng.choice(containers).process(shard, batch)
            lost = invocations <= scenario.faulty_invocations and rng.random() < scenario.lost_response_rate
            if lost:
                continue  # Lambda never heard: the same batch again
            lowest = min(failures, default=None)
            pending = pending[sum(1 for r in batch if lowest is None or r.seq < lowest) :]
            assert invocations < 10_000, "a shard never got through"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_replays_with_faults_and_two_containers_equal_one_clean_pass(scenario: Scenario) -> None:
    world = World()
    deliver_with_faults(world, scenario)
    expected = clean_pass(scenario)
    stored = outcome_of_items(world.aggregates.table.all_items())
    assert stored.aggregates == expected.aggregates
    assert stored.rollups == expected.rollups
    assert {key: view[0] for key, view in stored.aggregates.items()} == dict(naive_counts(scenario))


# -- the funnel and the profiles ----------------------------------------------------------------------


def funnel_visits(users: int) -> list[CanonicalEvent]:
    """User n goes n+1 steps down the funnel (wrapping at its length)."""
    return [
        canonical(
            step,
            None,
            user=f"v{n}",
            at=BASE_TIME + n * 100 + depth,
            event_id=f"g:{n:04d}{depth:02d}",
            dialect="widget",
        )
        for n in range(users)
        for depth, step in enumerate(FUNNEL[: n % len(FUNNEL) + 1])
    ]


def test_the_funnel_counts_each_user_at_each_step_reached_once_whatever_the_replays() -> None:
    world = World(batch_size=4)
    world.control.configs.clear()  # a chatbot without a config
    world.events.put_all(funnel_visits(12))
    container = world.container()
    world.stream.deliver(container.process)
    for shard, batch in world.stream.delivered[::2]:
        world.container().process(shard, batch)  # delivered again, by a container that never saw them
    expected = Counter(
        {
            funnel_key(step): sum(1 for n in range(12) if n % len(FUNNEL) + 1 >= step)
            for step in range(1, len(FUNNEL) + 1)
        }
    )
    by_step: Counter[str] = Counter()
    for rollup in world.rollups():
        if rollup.key in expected:
            by_step[rollup.key] += rollup.users
    assert by_step == expected
    # The rollups agree with the users' own funnel items.
    reached = Counter(slot for state in world.funnels() for slot in state.counted())
    day = day_of(BASE_TIME)
    assert reached == Counter(
        {(day, funnel_key(step), "none"): expected[funnel_key(step)] for step in range(1, 7)}
    )
    assert "p1" in world.control.listed  # a chatbot that sends events and has no config is listed


def shoppers(users: int) -> list[CanonicalEvent]:
    """User n joins A/B group control (even n) or test (odd), through a widget visit or Segment's
    Experiment Viewed; every third buys for n + 1 EUR, and every user whose n ends in 2 or 5 is
    refunded 10 EUR, a refund that may arrive before its purchase."""
    events = []
    for n in range(users):
        user, group = f"s{n}", ("control", "test")[n % 2]
        at = BASE_TIME + n * 1000
        joined = "visitor" if n % 4 < 2 else "Experiment Viewed"
        events.append(canonical(joined, None, user=user, at=at, event_id=f"j{n}", ab_group=group))
        if n % 3 == 0:
            paid = Decimal(n + 1)
            events.append(
                canonical(
                    "Order Completed",
                    None,
                    user=user,
                    at=at + 5,
                    event_id=f"o{n}",
                    commerce="purchase",
                    total_value_base=paid,
                )
            )
        if n % 10 in (2, 5):
            events.append(
                canonical(
                    "Order Refunded",
                    None,
                    user=user,
                    at=at + 9,
                    event_id=f"r{n}",
                    commerce="refund",
                    total_value_base=Decimal(10),
                )
            )
    return events


def test_ab_groups_and_net_revenue_count_once_whatever_the_replays() -> None:
    world = World(batch_size=3)
    world.control.configs.clear()
    events = shoppers(40)
    random.Random(7).shuffle(events)  # refunds before purchases, purchases before visits
    world.events.put_all(events)
    world.stream.deliver(world.container().process)
    for shard, batch in world.stream.delivered[::2]:
        world.container().process(shard, batch)
    found: Counter[tuple[str, str]] = Counter()
    revenue: Counter[tuple[str, str]] = Counter()
    for rollup in world.rollups():
        found[(rollup.key, rollup.group)] += rollup.users
        revenue[(rollup.key, rollup.group)] += rollup.revenue
    buyers = [n for n in range(40) if n % 3 == 0]
    net = {n: max(0, (n + 1 if n % 3 == 0 else 0) - (10 if n % 10 in (2, 5) else 0)) for n in range(40)}
    for index, group in enumerate(("control", "test")):
        assert found[(AB_USERS_KEY, group)] == 20
        assert found[(AB_CONVERSIONS_KEY, group)] == sum(1 for n in buyers if n % 2 == index)
        assert revenue[(AB_USERS_KEY, group)] == sum(net[n] for n in range(40) if n % 2 == index)
    # Revenue: the purchases, less each refund as far as its user's purchases go (never below zero).
    purchases = sum(n + 1 for n in buyers)
    taken = sum(min(10, n + 1 if n % 3 == 0 else 0) for n in range(40) if n % 10 in (2, 5))
    assert revenue[("Order Completed", "none")] == purchases
    assert revenue[(REFUNDS_KEY, "none")] == -taken
    assert purchases - taken == sum(net.values())


def identify(
    user: str, anonymous: str | None, *, n: int, traits: dict[str, Any] | None = None
) -> CanonicalEvent:
    return identify_call(user, anonymous, at=BASE_TIME + n, event_id=f"m-{n}", traits=traits)


def test_identify_links_an_anonymous_id_and_keeps_the_traits() -> None:
    world = World()
    world.events.put_all([identify("alice", "anon-1", n=1, traits={"plan": "pro"})])
    assert world.stream.deliver(world.container().process) == {}
    alice = world.aggregates.get_profile("p1", "alice")
    anonymous = world.aggregates.get_profile("p1", "anon-1")
    assert alice is not None
    assert anonymous is not None
    assert alice.anonymous_ids == ["anon-1"]
    assert anonymous.merged_into == "alice"
    assert alice.traits["plan"].value == "pro"
    assert "plan" in world.control.people["p1"].trait_names  # the CSV's columns learn the trait


def test_an_id_that_has_been_a_user_is_never_linked_and_the_refusal_is_recorded() -> None:
    world = World()
    world.events.put_all([identify("victim", None, n=1)])
    world.stream.deliver(world.container().process)
    world.events.put_all([identify("attacker", "victim", n=2)])
    world.stream.deliver(world.container().process)
    victim = world.aggregates.get_profile("p1", "victim")
    assert victim is not None
    assert victim.merged_into is None
    refused = [r for record in world.rejections.records() for r in record.rejections]
    assert [r.details[0]["field"] for r in refused] == ["anonymousId"]


class ConflictOnce(FakeAggregates):
    """Another shard writes the anonymous id's profile between this batch's read and its write."""

    def __init__(self, user_id: str) -> None:
        super().__init__()
        self._user_id = user_id
        self.raised = False

    def save(self, state: Any) -> None:
        if (
            not self.raised
            and getattr(state, "user_id", None) == self._user_id
            and hasattr(state, "merged_into")
        ):
            self.raised = True
            raise Conflict("changed since it was read")
        super().save(state)


def test_a_link_whose_profile_changed_is_never_folded_again_but_retried_whole() -> None:
    world = World(aggregates=ConflictOnce("anon-9"))
    world.events.put_all([identify("bob", "anon-9", n=1)])
    world.stream.pull()
    ((shard, records),) = world.stream.pending.items()
    container = world.container()
    (identified,) = [record.seq for record in records if record.event is not None]  # (and its id's claim)
    assert set(container.process(shard, records)) == {identified}  # decided on what was read: fails
    assert world.stream.deliver(container.process) == {}  # the retry decides again
    bob = world.aggregates.get_profile("p1", "bob")
    assert bob is not None
    assert bob.anonymous_ids == ["anon-9"]


def test_a_suppressed_ids_late_calls_are_removed_and_never_counted() -> None:
    world = World()
    world.control.suppress_ids("p1", ["gone"])
    late = events_of(3, users=1)
    late = [event.model_copy(update={"user_id": "gone"}) for event in late]
    world.events.put_all(late + events_of(2, users=1))
    assert world.stream.deliver(world.container().process) == {}
    assert {state.user_id for state in world.aggregates.stored()} == {"u0"}
    assert {event.user_id for event in world.events.events()} == {"u0"}


@pytest.mark.parametrize("pending", [20, 150])
def test_events_an_older_version_stored_under_their_ids_move_to_the_users_index_past_the_list(
    pending: int,
) -> None:
    world = World()
    named = [
        canonical("test", None, user="u1", at=BASE_TIME + n, event_id=f"msg-{n}", dialect="segment")
        for n in range(pending)
    ]
    for event in named:  # as the previous version stored them: under their own ids
        item = stored_event_item(event, 86_400)
        world.events.table.put({**item, "pk": {"S": client_id_pk("p1", event.event_id)}})
    assert world.stream.deliver(world.container().process) == {}
    (state,) = world.aggregates.stored()
    indexed = [item for item in world.events.table.all_items() if item.get("kind", {}).get("S") == "index"]
    listed = len(state.pending_ids) + sum(len(item["entries"]["L"]) for item in indexed)
    assert state.count == pending
    assert listed == pending


def test_client_named_events_stored_now_sit_in_their_users_partition_and_are_listed_nowhere() -> None:
    world = World()
    world.events.put_all(
        [
            canonical("test", None, user="u1", at=BASE_TIME + n, event_id=f"m:msg-{n}", dialect="segment")
            for n in range(150)
        ]
    )
    assert world.stream.deliver(world.container().process) == {}
    (state,) = world.aggregates.stored()
    assert state.count == 150
    assert state.pending_ids == []
    assert len(world.events.table.query(event_pk("p1", "u1"))) == 150  # no index item among them


def test_a_container_keeps_a_config_while_its_stamp_holds_and_sees_any_change_at_once() -> None:
    control = FakeControl(configs={"p1": PUBLISHED})
    full_reads: list[str] = []
    read = control.get_plugin

    def counted(plugin_id: str) -> Any:
        full_reads.append(plugin_id)
        return read(plugin_id)

    control.get_plugin = counted  # type: ignore[method-assign]
    configs = CurrentConfigs(control)
    for _ in range(100):  # a hundred batches: the stamp each time, the config once
        configs.get_plugin("p1")
    assert (full_reads, control.stamp_reads) == (["p1"], 100)
    control.suppress_ids("p1", ["u9"])  # the next batch sees it
    assert configs.get_plugin("p1")[1].suppresses("u9", None, None)
    control.publish("p1", PUBLISHED.config)  # so it does a publish (a key's reset comes with one)
    published = configs.get_plugin("p1")[0]
    assert published is not None
    assert published.version == 2
    assert full_reads == ["p1"] * 3
