"""The dashboard read model on an in-memory reader: paging, CSV parts, summary arithmetic."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal

import pytest

from tracking.api_errors import ValidationFailed
from tracking.keys import AB_CONVERSIONS_KEY, AB_USERS_KEY, REFUNDS_KEY, SEP, is_internal_key
from tracking.models.aggregates import AggregateState, RollupState, UserItems, UsersPage
from tracking.models.config import PluginConfig, PublishedConfig
from tracking.models.funnel import funnel_key
from tracking.query import csv_export, paging, rollups, rows
from tracking.query.significance import comparison

CONFIG = PublishedConfig(
    plugin_id="p",
    config=PluginConfig.model_validate(
        {"tracking": {"events": [{"key": "k", "name": {"en": "K"}, "aggregations": ["increment"]}]}}
    ),
    version=1,
    published_at=0,
)


class MemoryReader:
    def __init__(
        self, users: dict[str, list[AggregateState]], rollups: list[RollupState] | None = None
    ) -> None:
        self._users = dict(sorted(users.items()))
        self._rollups = rollups or []
        self.queries = 0

    def page_of_users(self, plugin_id: str, after_user: str | None, max_items: int) -> UsersPage:
        self.queries += 1
        items = [
            (u, s)
            for u, states in self._users.items()
            if after_user is None or u > after_user
            for s in states
        ]
        taken = items[:max_items]
        page: dict[str, list[AggregateState]] = {}
        for user, state in taken:
            page.setdefault(user, []).append(state)
        more = len(items) > max_items
        if more and len(page) > 1:
            page.pop(next(reversed(page)))
        return UsersPage(page, more)

    def users(self, plugin_id: str, after_user: str | None = None) -> Iterator[UsersPage]:
        for user, states in self._users.items():
            if after_user is None or user > after_user:
                yield UsersPage({user: states}, more=False)

    def user_items(self, plugin_id: str, user_id: str) -> UserItems:
        return self._users.get(user_id, []), None

    def rollups(
        self, plugin_id: str, first_day: str, last_day: str, keys: Sequence[str] | None = None
    ) -> list[RollupState]:
        return [r for r in self._rollups if first_day <= r.day <= last_day]

    def has_rollups(self, plugin_id: str) -> bool:
        return bool(self._rollups)


def user(name: str, count: int = 1, key: str = "k") -> list[AggregateState]:
    return [AggregateState(plugin_id="p", user_id=name, key=key, version=1, count=count)]


def test_pages_skip_users_with_nothing_to_show_and_lose_no_one() -> None:
    users = {f"u{i}": user(f"u{i}") for i in range(7)}
    users["u3"] = user("u3", key="undeclared")
    reader = MemoryReader(users)
    seen, cursor = [], None
    while True:
        page = rows.page_of_rows(reader, CONFIG, cursor, 2, {})
        seen += [row["user_id"] for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["u0", "u1", "u2", "u4", "u5", "u6"]


def test_a_cursor_round_trips_and_a_forged_one_is_rejected() -> None:
    assert paging.decode_user_cursor(paging.encode_user_cursor("user 😍")) == "user 😍"
    with pytest.raises(ValidationFailed):
        paging.decode_user_cursor(paging.encode_user_cursor(f"bad{SEP}user"))
    with pytest.raises(ValidationFailed):
        paging.decode_user_cursor("not-base64-json")


def test_csv_parts_continue_where_the_budget_stopped() -> None:
    reader = MemoryReader({f"user-{i:04d}": user(f"user-{i:04d}", i + 1) for i in range(500)})
    first, cursor = csv_export.export_csv(reader, CONFIG, lang=None, chosen={}, budget_bytes=2_000)
    assert cursor is not None
    second, rest = csv_export.export_csv(reader, CONFIG, lang=None, chosen={}, cursor=cursor)
    assert rest is None
    rows = list(csv.reader(io.StringIO(first.removeprefix("\ufeff") + second)))
    assert rows[0] == ["user_id", "K"]
    assert [r[0] for r in rows[1:]] == [f"user-{i:04d}" for i in range(500)]


def test_a_page_of_rows_ends_at_its_budget_and_the_next_continues() -> None:
    reader = MemoryReader({f"user-{i:04d}": user(f"user-{i:04d}", i + 1) for i in range(50)})
    first = rows.page_of_rows(reader, CONFIG, None, 200, {}, budget_bytes=1_000)
    assert 1 <= len(first.rows) < 50
    assert first.next_cursor is not None
    rest = rows.page_of_rows(reader, CONFIG, first.next_cursor, 200, {})
    assert rest.next_cursor is None
    assert [row["user_id"] for row in first.rows + rest.rows] == [f"user-{i:04d}" for i in range(50)]
    # However small the budget, a page holds one row, so paging always moves on.
    assert len(rows.page_of_rows(reader, CONFIG, None, 200, {}, budget_bytes=1).rows) == 1


@pytest.mark.parametrize(
    ("value", "cell"), [("=1+2", "'=1+2"), ("-5", "-5"), ("@cmd", "'@cmd"), ("plain", "plain")]
)
def test_csv_cells_that_look_like_formulas_are_defused(value: str, cell: str) -> None:
    assert csv_export._csv_cell(value) == cell


def rollup(
    day: str, key: str, group: str, count: int, users: int, revenue: str = "0", reset_at: int = 0
) -> RollupState:
    return RollupState(
        "bot", day, key, group, "s", count=count, users=users, revenue=Decimal(revenue), reset_at=reset_at
    )


def test_summary_sums_days_groups_and_shards() -> None:
    reader = MemoryReader(
        {},
        [
            rollup("2025-11-24", "visitor", "control", 5, 4),
            rollup("2025-11-25", "visitor", "control", 2, 1),
            rollup("2025-11-24", "visitor", "test", 3, 5),
            rollup("2025-11-24", "purchase", "control", 1, 1, "91.98"),
            rollup("2025-11-24", "purchase", "none", 1, 1, "0.01"),
            rollup("2025-12-01", "visitor", "control", 9, 9),  # outside the range
            # Funnel rollups: users per step by the day they first visited, from two shards.
            rollup("2025-11-24", funnel_key(1), "none", 0, 8),
            rollup("2025-11-25", funnel_key(1), "none", 0, 1),
            rollup("2025-11-24", funnel_key(2), "none", 0, 3),
            rollup("2025-11-25", funnel_key(2), "none", 0, -1),  # a user moved to an earlier cohort
            rollup("2025-11-24", funnel_key(6), "none", 0, 1),
            # A/B groups: users by the day they joined, with their net revenue, from two shards.
            rollup("2025-11-24", AB_USERS_KEY, "control", 0, 4, "91.98"),
            rollup("2025-11-25", AB_USERS_KEY, "control", 0, 1),
            rollup("2025-11-24", AB_CONVERSIONS_KEY, "control", 0, 1),
            rollup("2025-11-24", AB_USERS_KEY, "test", 0, 5, "20"),
            rollup("2025-11-24", AB_USERS_KEY, "test", 0, -1, "-20"),  # a user moved to control
            rollup("2025-12-01", AB_USERS_KEY, "test", 0, 7),  # outside the range
            rollup("2025-11-26", REFUNDS_KEY, "none", 0, 0, "-0.50"),  # a refund taken off
        ],
    )
    result = rollups.summary(reader, "bot", None, first="2025-11-24", last="2025-11-30")
    assert result is not None
    assert result["counts"] == {"purchase": 2, "visitor": 10}
    assert result["revenue_eur"] == 91.49
    assert result["ab_test"]["control"] == {
        "users": 5,
        "conversions": 1,
        "conversion_rate": 0.2,
        "revenue_eur": 91.98,
    }
    assert result["ab_test"]["test"]["conversion_rate"] == 0.0
    assert result["ab_test"]["test"] == {
        "users": 4,
        "conversions": 0,
        "conversion_rate": 0.0,
        "revenue_eur": 0,
    }
    assert result["ab_test"]["comparison"] == comparison((5, 1), (4, 0))
    assert result["ab_test"]["comparison"]["difference"] == -0.2
    assert [step["users"] for step in result["funnel"]] == [9, 2, 0, 0, 0, 1]
    assert result["funnel"][0]["conversion_overall"] == 1.0
    assert result["funnel"][1]["conversion_from_previous"] == round(2 / 9, 4)
    assert not [key for key in result["counts"] if is_internal_key(key)]  # the funnel's own rollups


def test_summary_reads_the_days_before_per_user_ab_groups_as_the_version_before_did() -> None:
    # An upgraded stack: 24-25 November counted by the version before (visitors and buyers of each
    # group, purchases' revenue by their events' group), 26 November by users who joined a group.
    reader = MemoryReader(
        {},
        [
            rollup("2025-11-24", "visitor", "control", 6, 4),
            rollup("2025-11-25", "purchase", "control", 1, 1, "12.50"),
            rollup("2025-11-25", "visitor", "test", 3, 3),
            rollup("2025-11-26", "visitor", "test", 9, 9),  # counted by its A/B rollups below
            rollup("2025-11-26", "purchase", "test", 1, 1, "7"),
            rollup("2025-11-26", AB_USERS_KEY, "test", 0, 8, "7"),
            rollup("2025-11-26", AB_CONVERSIONS_KEY, "test", 0, 1),
        ],
    )
    result = rollups.summary(reader, "bot", None, first="2025-11-24", last="2025-11-26")
    assert result is not None
    assert result["ab_test"]["control"] == {
        "users": 4,
        "conversions": 1,
        "conversion_rate": 0.25,
        "revenue_eur": 12.5,
    }
    assert result["ab_test"]["test"] == {
        "users": 11,
        "conversions": 1,
        "conversion_rate": 0.0909,
        "revenue_eur": 7,
    }
    assert result["revenue_eur"] == 19.5


def test_a_range_that_holds_only_the_day_a_user_left_reads_no_fewer_than_none() -> None:
    # A user moved from 25 November to an earlier day (and took a purchase with them): 25 November
    # alone holds their -1, and the answer is an empty group, not a negative one (nor a 500).
    reader = MemoryReader(
        {},
        [
            rollup("2025-11-25", AB_USERS_KEY, "test", 0, -1, "-9.5"),
            rollup("2025-11-25", AB_CONVERSIONS_KEY, "test", 0, -1),
            rollup("2025-11-25", AB_CONVERSIONS_KEY, "control", 0, 1),
        ],
    )
    result = rollups.summary(reader, "bot", None, first="2025-11-25", last="2025-11-25")
    assert result is not None
    assert result["ab_test"]["test"] == {
        "users": 0,
        "conversions": 0,
        "conversion_rate": None,
        "revenue_eur": 0,
    }
    assert result["ab_test"]["control"]["conversions"] == 0  # never more than its users
    assert result["ab_test"]["comparison"] == {"difference": None, "ci95": None, "p_value": None}


def test_summary_without_visitors_has_no_rates_rather_than_a_division_by_zero() -> None:
    result = rollups.summary(
        MemoryReader({}, [rollup("2025-11-24", "purchase", "test", 1, 1)]),
        "bot",
        None,
        first="2025-11-24",
        last="2025-11-24",
    )
    assert result is not None
    assert [step["conversion_overall"] for step in result["funnel"]] == [None] * 6
    assert result["ab_test"]["test"]["conversion_rate"] is None
    assert result["ab_test"]["comparison"] == {"difference": None, "ci95": None, "p_value": None}


def test_summary_ignores_rollups_from_before_a_reset() -> None:
    published = CONFIG.model_copy(update={"resets": {"visitor": 100}})
    reader = MemoryReader(
        {},
        [
            rollup("2025-11-24", "visitor", "none", 5, 5, reset_at=0),
            rollup("2025-11-24", "visitor", "none", 1, 1, reset_at=100),
        ],
    )
    result = rollups.summary(reader, "bot", published, first="2025-11-24", last="2025-11-24")
    assert result is not None
    assert result["counts"] == {"visitor": 1}


def test_summary_defaults_to_the_last_30_days() -> None:
    result = rollups.summary(
        MemoryReader({}, [rollup("2025-11-01", "visitor", "none", 1, 1)]),
        "bot",
        None,
        first=None,
        last=None,
        today=date(2025, 11, 30),
    )
    assert result is not None
    assert (result["from"], result["to"], result["counts"]) == ("2025-11-01", "2025-11-30", {"visitor": 1})


def test_summary_of_an_unknown_chatbot_is_none() -> None:
    assert rollups.summary(MemoryReader({}), "nobody", None, first=None, last=None) is None


def test_calls_opted_out_by_dnt_are_reported_apart_from_the_refused_ones() -> None:
    from tracking.models.aggregates import REJECTED_GROUP  # noqa: PLC0415
    from tracking.models.rejections import OPTED_OUT  # noqa: PLC0415

    reader = MemoryReader(
        {},
        [
            rollup("2025-11-24", "visitor", "none", 1, 1),
            rollup("2025-11-24", OPTED_OUT, REJECTED_GROUP, 3, 0),
            rollup("2025-11-25", OPTED_OUT, REJECTED_GROUP, 2, 0),
            rollup("2025-11-25", "ANALYTICS_003", REJECTED_GROUP, 1, 0),
        ],
    )
    result = rollups.summary(reader, "bot", None, first="2025-11-24", last="2025-11-25")
    assert result is not None
    assert result["opted_out"] == 5
    assert result["rejected"] == {"ANALYTICS_003": 1}
