"""The five aggregations and the exactly-once guard, as pure folds (tracking.aggregate.fold)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from devstack.local.template import Template
from tracking.aggregate.fold import (
    SHARD_MEMORY_MS,
    Counted,
    KeySpec,
    StreamRecord,
    fold,
    fold_rollup,
)
from tracking.aggregate.funnel import RECENT_MAX
from tracking.keys import AB_CONVERSIONS_KEY, AB_USERS_KEY, REFUNDS_KEY, funnel_key
from tracking.models.aggregates import (
    ARRAY_MAX_VALUES,
    DAY_FIRSTS_MAX,
    GROUP_MAX_DISTINCT,
    AggregateState,
    RollupState,
    combine,
)
from tracking.models.canonical import CanonicalEvent
from tracking.models.config import Aggregation
from tracking.models.funnel import FunnelState
from tracking.query.cells import cell
from tracking.storage.aggregate_items import funnel_to_item
from tracking.storage.dynamo import item_size

NOW = 1_764_016_800_000
ALL: tuple[Aggregation, ...] = ("increment", "array", "average", "string", "group_array")


def event(
    value: Any = None, *, at: int = NOW, event_id: str = "g:1", received: int = NOW, **extra: Any
) -> CanonicalEvent:
    return CanonicalEvent(
        plugin_id="p",
        user_id="u",
        key="k",
        dialect="plugin",
        event_id=event_id,
        value=value,
        event_time=at,
        received_at=received,
        **extra,
    )


def records(*values: Any, start: int = 1) -> list[StreamRecord]:
    return [
        StreamRecord(start + i, "INSERT", event(v, event_id=f"g:{start + i:04d}"))
        for i, v in enumerate(values)
    ]


def applied(
    recs: list[StreamRecord], aggregations: tuple[Aggregation, ...] = ALL, shard: str = "s1"
) -> AggregateState:
    state, _ = fold(AggregateState("p", "u", "k"), shard, recs, KeySpec(aggregations), NOW)
    return state


def shown(state: AggregateState, aggregation: Aggregation) -> dict[str, Any] | None:
    return cell(state, aggregation)


def kept(state: AggregateState) -> list[Any]:
    return [entry.value for entry in state.values]


def test_increment_counts_events_with_or_without_value() -> None:
    state = applied(records(None, None))
    assert shown(state, "increment") == {"value": 2, "display": "2"}


def test_array_lists_values_in_arrival_order() -> None:
    assert shown(applied(records("apples", "oranges")), "array") == {
        "value": ["apples", "oranges"],
        "display": "apples, oranges",
    }


def test_array_order_is_event_time_order_whatever_the_arrival_order() -> None:
    early = event("early", at=NOW - 1000, event_id="g:b")
    late = event("late", at=NOW, event_id="g:a")
    one_way = applied([StreamRecord(1, "INSERT", early), StreamRecord(2, "INSERT", late)])
    other_way = applied([StreamRecord(1, "INSERT", late), StreamRecord(2, "INSERT", early)])
    assert kept(one_way) == kept(other_way) == ["early", "late"]


def test_combined_states_read_as_one_person() -> None:
    mine = applied([StreamRecord(1, "INSERT", event(Decimal(4), at=NOW, event_id="g:1"))])
    theirs = applied([StreamRecord(1, "INSERT", event(Decimal(2), at=NOW - 5, event_id="g:2"))])
    theirs.count_group("😍")
    both = combine([mine, theirs])
    assert (both.count, both.total, both.numeric) == (2, Decimal(6), 2)
    assert [entry.value for entry in both.values] == [Decimal(2), Decimal(4)]
    assert both.latest is not None
    assert both.latest.value == Decimal(4)
    assert both.counts["😍"] == theirs.counts["😍"]
    assert (both.first_at, both.last_at) == (NOW - 5, NOW)


def test_events_an_older_version_stored_under_their_own_ids_are_listed_for_deletion() -> None:
    older = StreamRecord(1, "INSERT", event("a", event_id="m:abc"), by_id=True)
    partitioned = StreamRecord(2, "INSERT", event("b", event_id="m:def"))  # in its user's partition
    generated = StreamRecord(3, "INSERT", event("b", event_id="g:0002"))
    assert applied([older, partitioned, generated]).pending_ids == [("m:abc", NOW)]


def test_average_of_numeric_values_only() -> None:
    state = applied(records(Decimal(10), Decimal(5), "not a number", True))
    assert shown(state, "average") == {"value": 7.5, "display": "7.5"}
    assert shown(applied(records("a")), "average") is None


def test_string_is_the_latest_value_by_event_time() -> None:
    assert shown(applied(records("Michael", "John")), "string") == {"value": "John", "display": "John"}


def test_a_late_arriving_older_event_does_not_win() -> None:
    late = [
        StreamRecord(1, "INSERT", event("John", at=NOW + 1000, event_id="g:b")),
        StreamRecord(2, "INSERT", event("Michael", at=NOW, event_id="g:a")),
    ]
    assert shown(applied(late), "string")["value"] == "John"  # type: ignore[index]


def test_equal_event_times_are_ordered_by_event_id_whatever_the_arrival_order() -> None:
    first = StreamRecord(1, "INSERT", event("A", event_id="g:0001"))
    second = StreamRecord(2, "INSERT", event("B", event_id="g:0002"))
    assert (
        applied([first, second]).latest
        == applied([StreamRecord(1, "INSERT", second.event), StreamRecord(2, "INSERT", first.event)]).latest
    )
    assert applied([first, second]).latest.value == "B"  # type: ignore[union-attr]


def test_group_array_counts_each_value_and_emoji_are_fine() -> None:
    state = applied(records(*(["😍"] * 7 + ["😱"] * 2)))
    assert shown(state, "group_array") == {
        "value": {"total": 9, "counts": {"😍": 7, "😱": 2}},
        "display": "9 (😍 7, 😱 2)",
    }


def test_group_array_bounds_distinct_values_with_an_overflow_bucket() -> None:
    values = [f"v{i}" for i in range(GROUP_MAX_DISTINCT + 5)] + ["v0"]
    state = applied(records(*values))
    assert len(state.counts) == GROUP_MAX_DISTINCT
    assert (state.counts["v0"], state.other) == (2, 5)
    result = shown(state, "group_array")
    assert result is not None
    assert result["value"]["total"] == len(values)
    assert result["display"].endswith("other 5)")


def test_array_keeps_the_most_recent_values_and_says_when_it_was_cut() -> None:
    state = applied(records(*[f"v{i}" for i in range(ARRAY_MAX_VALUES + 10)]))
    result = shown(state, "array")
    assert result is not None
    assert result["value"][0] == "v10"
    assert (result["total"], result["truncated"]) == (ARRAY_MAX_VALUES + 10, True)
    assert result["display"].startswith("…, v10,")


def test_only_the_listed_aggregations_are_kept() -> None:
    state = applied(records("a", "b"), ("increment",))
    assert (state.count, kept(state), state.counts, state.latest) == (2, [], {}, None)


def test_only_inserts_of_tracked_kinds_count() -> None:
    recs = [
        StreamRecord(1, "MODIFY", event("a")),
        StreamRecord(2, "REMOVE", None),
        StreamRecord(3, "INSERT", event("b", kind="identify")),
        StreamRecord(4, "INSERT", event("c", kind="page")),
    ]
    state, changed = fold(AggregateState("p", "u", "k"), "s1", recs, KeySpec(ALL), NOW)
    assert changed
    assert (state.count, kept(state)) == (1, ["c"])


def test_records_already_applied_on_a_shard_are_skipped() -> None:
    once = applied(records("a", "b", "c"))
    again, changed = fold(once, "s1", records("a", "b", "c"), KeySpec(ALL), NOW)
    assert not changed
    assert again.count == 3
    overlap, changed = fold(once, "s1", records("b", "c", "d", start=2), KeySpec(ALL), NOW)
    assert changed
    assert (overlap.count, kept(overlap)) == (4, ["a", "b", "c", "d"])


def test_sequence_numbers_of_another_shard_are_not_compared() -> None:
    state = applied(records("a", "b", start=100), shard="parent")
    child, changed = fold(state, "child", records("c", start=1), KeySpec(ALL), NOW)
    assert changed
    assert (child.count, set(child.applied)) == (3, {"parent", "child"})


def test_shards_older_than_the_stream_retention_are_forgotten() -> None:
    state = applied(records("a"), shard="old")
    later, _ = fold(state, "new", records("b"), KeySpec(ALL), NOW + SHARD_MEMORY_MS)
    assert set(later.applied) == {"new"}


def test_the_first_counted_record_is_remembered() -> None:
    state = applied(records("a", "b", start=7))
    assert state.first == ("s1", 7)
    assert state.is_first("s1", 7)
    assert not state.is_first("s1", 8)


def test_a_reset_drops_what_was_counted_and_events_received_before_it() -> None:
    state = applied(records("a", "b"))
    reset = KeySpec(ALL, reset_at=NOW + 10)
    older = StreamRecord(3, "INSERT", event("old", received=NOW + 5))
    newer = StreamRecord(4, "INSERT", event("new", received=NOW + 20))
    after, _ = fold(state, "s1", [older, newer], reset, NOW + 30)
    assert (after.count, kept(after), after.reset_at, after.first) == (1, ["new"], NOW + 10, ("s1", 4))


def test_rollups_count_events_new_users_and_purchase_revenue() -> None:
    purchase = StreamRecord(1, "INSERT", event(commerce="purchase", total_value_base=Decimal("91.98")))
    cart = StreamRecord(2, "INSERT", event(commerce="add_to_cart", total_value_base=Decimal("5.00")))
    base = RollupState("p", "2025-11-24", "k", "none", "s1")
    state, changed = fold_rollup(base, [Counted(purchase, True), Counted(cart, False)], 0)
    assert changed
    assert (state.count, state.users, state.revenue, state.seq) == (2, 1, Decimal("91.98"), 2)
    again, changed = fold_rollup(state, [Counted(purchase, True)], 0)
    assert not changed
    assert again.count == 2


@pytest.mark.parametrize(
    ("value", "display"),
    [(Decimal("7.50"), "7.5"), (Decimal("1E+1"), "10"), (True, "true"), ("text", "text")],
)
def test_values_display_plainly(value: Any, display: str) -> None:
    assert shown(applied(records(value)), "string")["display"] == display  # type: ignore[index]


def test_what_folds_remember_for_retries_holds_a_whole_batch_twice_over() -> None:
    # A batch's own records are never dropped from day_firsts or recent (their retry is the next
    # batch): the bound must hold the largest batch the event source mapping delivers, and more.
    batch = Template.load().stream_mapping("AggregateFunction").batch_size
    assert 2 * batch <= DAY_FIRSTS_MAX
    assert 2 * batch <= RECENT_MAX


def test_a_fold_forgets_what_its_shard_has_done_below_the_batch_start() -> None:
    # Given an aggregate that counted a new day on each of 150 records of one shard, over two batches
    recs = [
        StreamRecord(n, "INSERT", event("v", at=NOW - n * 86_400_000, received=NOW, event_id=f"g:{n:04d}"))
        for n in range(1, 151)
    ]
    state, _ = fold(AggregateState("p", "u", "k"), "s1", recs[:100], KeySpec(ALL), NOW, batch_start=1)
    assert len(state.day_firsts) == 100
    # When the next batch starts after them, what the first remembered is dropped: done for good
    state, _ = fold(state, "s1", recs[100:], KeySpec(ALL), NOW, batch_start=101)
    assert sorted(first[1] for first in state.day_firsts.values()) == list(range(101, 151))
    assert state.count == 150
    # And a retry of that batch (same start) still tells which record counted each day
    assert all(state.first_of_day(day, "s1", seq) for day, (_, seq, _) in state.day_firsts.items())


def test_an_array_keeps_4000_bytes_of_values_and_short_ranks_of_the_longest_ids() -> None:
    # 50 values of 100 emoji (400 bytes each), named by ids of 682 characters (the longest an event id is)
    recs = [
        StreamRecord(
            n, "INSERT", event(f"{n:02d}" + "😀" * 100, at=NOW + n, event_id="m:" + f"{n:02d}" * 340)
        )
        for n in range(1, 51)
    ]
    state = applied(recs)
    assert sum(len(str(e.value).encode()) for e in state.values) <= 4_000
    assert [str(e.value)[:2] for e in state.values] == [f"{n:02d}" for n in range(42, 51)]  # the latest
    assert all(len(e.event_id) <= 64 for e in state.values)
    assert state.latest is not None
    assert len(state.latest.event_id) <= 64


def test_events_of_one_instant_with_long_ids_are_ordered_the_same_whatever_their_arrival() -> None:
    first = event("a", event_id="m:" + "a" * 690)
    second = event("b", event_id="m:" + "b" * 690)
    one_way = applied([StreamRecord(1, "INSERT", first), StreamRecord(2, "INSERT", second)])
    other_way = applied([StreamRecord(1, "INSERT", second), StreamRecord(2, "INSERT", first)])
    assert one_way.latest == other_way.latest
    assert [e.value for e in one_way.values] == [e.value for e in other_way.values]


def test_a_group_value_is_counted_under_at_most_200_bytes_of_it() -> None:
    state = applied([StreamRecord(1, "INSERT", event("😀" * 1_000))], ("group_array",))
    ((name, times),) = state.counts.items()
    assert (name, times) == ("😀" * 50, 1)


# docs/DESIGN.md's table of item sizes: a funnel item at its largest.
FUNNEL_ITEM_BOUND = 150_000


def test_a_funnel_item_remembering_its_most_stays_within_its_documented_bound() -> None:
    # The most one record can change: an earlier first visit moves all six steps to another cohort
    # day (12 changes), an earlier group moves the user and their conversion to the other group (4),
    # and a refund is taken off (1); amounts as large as an event holds, 200 such records remembered.
    most = (
        [("2025-11-24", funnel_key(step), "none", -1, 0) for step in range(1, 7)]
        + [("2025-11-23", funnel_key(step), "none", 1, 0) for step in range(1, 7)]
        + [
            (day, key, group, n, n * 10**20)
            for day, n, group in (("2025-11-24", -1, "control"), ("2025-11-23", 1, "test"))
            for key in (AB_USERS_KEY, AB_CONVERSIONS_KEY)
        ]
        + [("2025-11-24", REFUNDS_KEY, "none", 0, -(10**20))]
    )
    shard = "shardId-00000001764016800000-" + "f" * 8
    state = FunnelState(
        "p" * 512,
        "u" * 512,
        applied={shard: (10**40, NOW)},
        entered_at=NOW,
        done=63,
        group="control",
        group_at=NOW,
        paid=10**20,
        refunded=10**20,
        recent={(shard, 10**40 + n): (NOW, tuple(most)) for n in range(RECENT_MAX)},
    )
    assert len(most) == 17
    size = item_size(funnel_to_item(state))
    assert size <= FUNNEL_ITEM_BOUND
