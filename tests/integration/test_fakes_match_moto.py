"""The in-memory fakes (devstack/fakes) keep the stores' semantics: the same sequence of calls, on the real
store over moto and on the fake, gives the same answers step by step: a conditional write that fails
on one fails on the other, an item too large is refused by both, and what is read back is equal."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from devstack.fakes.aggregates import FakeAggregates
from devstack.fakes.control import FakeBudgets, FakeControl
from devstack.fakes.events import FakeEvents, FakeRejections
from devstack.local.builders import canonical
from tests.integration.conftest import TEMPLATE
from tracking.keys import rejection_sk, rejections_pk
from tracking.models.aggregates import AggregateState, RollupState
from tracking.models.funnel import FunnelState
from tracking.models.people import ProfileState, TraitValue
from tracking.models.rejections import Rejection, RejectionRecord
from tracking.models.storage_failures import ConfigChanged, Conflict, ItemTooLarge, WriteKeyTaken
from tracking.storage.aggregates import AggregateStore
from tracking.storage.control import ControlStore
from tracking.storage.dynamo import client
from tracking.storage.events import EventStore
from tracking.storage.rejections import RejectionStore, record_to_item

NOW = 1_764_016_800_000
States = AggregateState | RollupState | ProfileState | FunnelState


def on_moto(run: Callable[[Any], list[Any]]) -> list[Any]:
    import boto3  # noqa: PLC0415

    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        for definition in TEMPLATE.table_definitions().values():
            dynamodb.create_table(**definition["create"])
        return run(client())


def outcome(call: Callable[[], Any]) -> Any:
    """What a call came to: its answer, or the kind of error it raised."""
    try:
        return ("ok", call())
    except (Conflict, ItemTooLarge, ConfigChanged, WriteKeyTaken, ValueError) as exc:
        return ("error", type(exc).__name__)


def fresh_state(kind: str, n: int) -> States:
    if kind == "aggregate":
        return AggregateState.start(("p1", f"k{n % 2}", f"u{n % 3}"))
    if kind == "profile":
        return ProfileState(plugin_id="p1", user_id=f"u{n % 3}")
    if kind == "funnel":
        return FunnelState(plugin_id="p1", user_id=f"u{n % 3}")
    return RollupState("p1", "2025-11-24", f"k{n % 2}", "none", "shard-1")


def grow(state: States, size: int) -> None:
    """Make the state's item about ``size`` bytes (past 400 KB it must be refused)."""
    if isinstance(state, AggregateState):
        state.count += 1
        state.pending_ids = [(f"m-{n:06d}-" + "x" * 40, n) for n in range(size // 40)]
    elif isinstance(state, ProfileState):
        state.traits = {f"t{n}": TraitValue("v" * 500, n, "e") for n in range(size // 530)}
    elif isinstance(state, FunnelState):
        state.done += 1
        state.entered_at = NOW
    else:
        state.count += 1
        state.revenue += Decimal("0.5")


step = st.tuples(
    st.sampled_from(["aggregate", "profile", "funnel", "rollup"]),
    st.integers(0, 5),  # which item
    st.sampled_from(["fresh", "latest", "stale"]),  # what copy the writer starts from
    st.sampled_from([100, 100, 5_000, 420_000]),  # item size
)


def run_steps(store: Any, steps: list[tuple[str, int, str, int]]) -> list[Any]:
    answers: list[Any] = []
    copies: dict[tuple[str, int], list[States]] = {}
    for kind, n, start, size in steps:
        seen = copies.setdefault((kind, n % 3), [fresh_state(kind, n)])
        base = seen[-1] if start == "latest" else seen[0] if start == "stale" else fresh_state(kind, n)
        state = copy.deepcopy(base)
        grow(state, size)
        answer = outcome(lambda state=state: store.save(state))  # type: ignore[misc]
        answers.append((answer, state.version))
        if answer[0] == "ok":
            seen.append(copy.deepcopy(state))
    answers.append(read_back(store))
    return answers


def read_back(store: Any) -> list[Any]:
    aggregates, rollups, profiles = store.load(
        [("p1", f"k{k}", f"u{u}") for k in range(2) for u in range(3)],
        [("p1", "2025-11-24", f"k{k}", "none") for k in range(2)],
        "shard-1",
        [("p1", f"u{u}") for u in range(3)],
    )
    funnels = store.load_funnels([("p1", f"u{u}") for u in range(3)])
    return [sorted(map(repr, group.values())) for group in (aggregates, rollups, profiles, funnels)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=12))
def test_versioned_writes_answer_the_same_on_both(steps: list[tuple[str, int, str, int]]) -> None:
    real = on_moto(lambda dynamodb: run_steps(AggregateStore(dynamodb, "AggregatesTable"), steps))
    assert run_steps(FakeAggregates(), steps) == real


def test_has_been_user_reads_the_same_items_on_both() -> None:
    def run(store: Any) -> list[Any]:
        as_user = AggregateState.start(("p1", "k", "alice"))
        as_user.as_user, as_user.count = True, 1
        store.save(as_user)
        store.save(ProfileState(plugin_id="p1", user_id="bob", anonymous_ids=["b-anon"]))
        store.save(ProfileState(plugin_id="p1", user_id="carol"))
        store.save(AggregateState.start(("p1", "k", "alice-2")))
        return [store.has_been_user("p1", user) for user in ("alice", "bob", "carol", "alice-2", "al")]

    assert run(FakeAggregates()) == on_moto(lambda dynamodb: run(AggregateStore(dynamodb, "AggregatesTable")))


def test_event_writes_answer_the_same_on_both() -> None:
    named = canonical("test", None, event_id="msg-1", dialect="segment", at=NOW)
    generated = [canonical("test", n, event_id=f"g:{n:06d}", at=NOW + n) for n in range(3)]
    huge = canonical(
        "test", None, event_id="msg-2", dialect="segment", at=NOW, properties={"x": "y" * 410_000}
    )

    def run(sink: Any) -> list[Any]:
        return [
            outcome(lambda: sink.put(named)),
            outcome(lambda: sink.put(named)),  # a retry: already stored
            outcome(lambda: sink.put_all([*generated, named, generated[0]])),
            outcome(lambda: sink.put(huge)),
            outcome(lambda: sink.put_all([huge, *generated])),  # nothing of the call is written
        ]

    fake = FakeEvents(retention_s=30 * 86_400)
    real = on_moto(lambda dynamodb: run(EventStore(dynamodb, "EventsTable", 30)))
    assert run(fake) == real
    assert sorted(event.event_id for event in fake.events()) == ["g:000000", "g:000001", "g:000002", "msg-1"]


def test_budgets_grant_the_same_on_both() -> None:
    calls = [
        ("a", 100, 120, NOW, True),
        ("a", 50, 120, NOW + 1, True),
        ("a", 1, 120, NOW + 2, False),
        ("b", 10, 120, NOW + 3, True),
        ("a", 5, 120, NOW + 60_000, True),  # the next window
        ("a", 200, 120, NOW + 60_001, False),
    ]

    def run(store: Any) -> list[Any]:
        grants = [
            store.reserve(ip, want, limit, 60_000, at, joining=joining)
            for ip, want, limit, at, joining in calls
        ]
        store.release("a", NOW + 60_000, 3)
        grants.append(store.reserve("a", 120, 120, 60_000, NOW + 60_002))
        return grants

    assert run(FakeBudgets()) == on_moto(lambda dynamodb: run(ControlStore(dynamodb, "ControlTable")))


def test_a_days_salt_is_made_once_and_kept_on_both() -> None:
    def run(store: Any) -> list[Any]:
        first = store.daily_salt("2026-12-07", 1_796_860_800)
        again = store.daily_salt("2026-12-07", 1_796_900_000)
        other = store.daily_salt("2026-12-08", 1_796_947_200)
        return [len(first), first == again, first == other]

    assert run(FakeBudgets()) == on_moto(lambda dynamodb: run(ControlStore(dynamodb, "ControlTable")))
    assert run(FakeBudgets()) == [32, True, False]


def test_plugin_lists_answer_the_same_on_both() -> None:
    def run(store: Any) -> list[Any]:
        answers = [store.register_plugin(f"bot-{n}", NOW) for n in (1, 2, 1, 3, 4)]
        store.add_trait_names("bot-1", ["plan", "email"])
        store.add_trait_names("bot-1", ["plan", "age"])
        return [*answers, store.get_plugin("bot-1"), store.get_plugin("bot-9")]

    fake = FakeControl(unconfigured_max=3)
    assert run(fake) == on_moto(
        lambda dynamodb: run(ControlStore(dynamodb, "ControlTable", unconfigured_max=3))
    )


def test_publishing_and_keys_answer_the_same_on_both() -> None:
    from tracking.models.config import PluginConfig, PublishedConfig  # noqa: PLC0415
    from tracking.models.control import DashboardKey  # noqa: PLC0415

    def config(version: int, plugin: str, *keys: str) -> PublishedConfig:
        event = {"key": "k", "name": {"en": "K"}, "aggregations": ["increment"]}
        body = {"tracking": {"events": [event]}, "write_keys": list(keys)}
        return PublishedConfig(
            plugin_id=plugin, config=PluginConfig.model_validate(body), version=version, published_at=NOW
        )

    def run(store: Any) -> list[Any]:
        key = DashboardKey("p1", "ab" * 32, NOW, "ops", "wxyz")
        # What the config carries is checked when it is built, not by the store.
        assert config(1, "p1", "wk_alpha_1").config.write_keys == ("wk_alpha_1",)
        answers = [
            outcome(lambda: store.save_config(config(1, "p1", "wk_alpha_1", "wk_bravo_2"), None)),
            outcome(lambda: store.save_config(config(1, "p1"), None)),  # someone published first
            outcome(lambda: store.save_config(config(1, "p2", "wk_bravo_2"), None)),  # wk_b is p1's
            outcome(
                lambda: store.save_config(
                    config(2, "p1", "wk_alpha_1"), config(1, "p1", "wk_alpha_1", "wk_bravo_2")
                )
            ),
            outcome(lambda: store.save_config(config(1, "p2", "wk_bravo_2"), None)),  # dropped by p1: free
            store.plugin_for_write_key("wk_alpha_1"),
            store.plugin_for_write_key("wk_bravo_2"),
            store.list_plugins(None, 1),
            store.list_plugins("p1", 1),
            outcome(lambda: store.save_dashboard_key(key)),
            [(k.key_id, k.last4) for k in store.list_keys("p1")],
        ]
        store.key_used(key, NOW + 1)
        store.key_used(key, NOW)  # an older use changes nothing
        answers.append(store.dashboard_key(key.key_hash))
        store.delete_dashboard_key(key)
        answers += [store.dashboard_key(key.key_hash), store.list_keys("p1"), store.get_config("p1")]
        return answers

    fake = FakeControl()
    assert run(fake) == on_moto(lambda dynamodb: run(ControlStore(dynamodb, "ControlTable")))


def test_pages_of_users_and_rollups_read_the_same_on_both() -> None:
    def run(store: Any) -> list[Any]:
        for n in range(7):
            for key in ("a", "b", "c"):
                state = AggregateState.start(("p1", key, f"user-{n}"))
                state.count = n + 1
                store.save(state)
            rollup = RollupState("p1", f"2025-11-2{n % 3}", "a" if n % 2 else "b", "none", f"shard-{n}")
            rollup.count = n
            store.save(rollup)
        store.save(ProfileState(plugin_id="p1", user_id="user-2"))
        pages, after = [], None
        while True:
            page = store.page_of_users("p1", after, 5)
            pages.append((list(page.users), sorted(page.profiles), page.more))
            if not page.more:
                break
            after = next(reversed(page.users))
        every = [list(page.users) for page in store.users("p1", "user-4")]
        rollups = sorted(repr(r) for r in store.rollups("p1", "2025-11-21", "2025-11-22", ["a"]))
        # Then the rollups of the days before the 22nd folded into their days' items: read the same.
        folded = store.compact_rollups("p1", "2025-11-22", idle_before=1, limit=100)
        after_folding = sorted(repr(r) for r in store.rollups("p1", "2025-11-20", "2025-11-22"))
        return [
            pages,
            every,
            rollups,
            store.has_rollups("p1"),
            store.has_rollups("p2"),
            folded,
            after_folding,
        ]

    assert run(FakeAggregates()) == on_moto(lambda dynamodb: run(AggregateStore(dynamodb, "AggregatesTable")))


def test_rejection_records_spread_over_partitions_list_and_rewrite_the_same_on_both() -> None:
    """Records over the plugin's 16 partitions and one in its partition of old (before the spread):
    every page newest first and oldest first lists each once in key order, on the fake as on moto,
    and a rewrite or a removal finds the record wherever it is."""

    def record(n: int) -> RejectionRecord:
        rejection = Rejection("VALIDATION_ERROR", f"call {n}", payload=f"payload {n}")
        return RejectionRecord("p1", 1_764_000_000_000 + n, "segment", (rejection,), {"VALIDATION_ERROR": 1})

    def run(store: Any, put: Callable[[dict[str, Any]], None]) -> list[Any]:
        for n in range(40):
            store.record(record(n))
        old = record_to_item(record(100), rejection_sk(1_763_000_000_000, "00old"))
        put({**old, "pk": {"S": rejections_pk("p1", None)}})  # as the first layout left it
        answers: list[Any] = []
        for newest in (True, False):
            keys: list[str] = []
            cursor: str | None = None
            while True:
                found, cursor = (store.newest if newest else store.page)("p1", cursor, 7)
                keys += [sk for sk, _ in found]
                if cursor is None:  # (newest first, the cursor is the next page's first record)
                    break
            answers.append([sk[:13] for sk in keys])
        sk_old = old["sk"]["S"]
        store.replace(sk_old, dataclasses.replace(record(100), rejections=()))  # removed where it is
        first_sk, first = store.page("p1", None, 1)[0][0]
        store.replace(first_sk, dataclasses.replace(first, rejections=()))
        answers.append(len(store.page("p1", None, 100)[0]))
        return answers

    fake = FakeRejections()
    on_fake = run(fake, fake.table.put)

    def real(dynamodb: Any) -> list[Any]:
        return run(
            RejectionStore(dynamodb, "EventsTable"),
            lambda item: dynamodb.put_item(TableName="EventsTable", Item=item),
        )

    assert on_fake == on_moto(real)
    newest, oldest, left = on_fake
    assert newest == sorted(newest, reverse=True)
    assert len(newest) == 41  # each once
    assert oldest == sorted(newest)
    assert left == 39
