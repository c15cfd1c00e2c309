"""Breakdown and retention from the lake: exact numbers over a constructed data set (DuckDB over real
Parquet files), nothing a caller sends ever spliced into SQL, and Athena's flow (an answer within the
wait, else a query id answered later, and only to a caller of its plugin)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from devstack.local.lake import write_parquet
from tracking.api_errors import NotFound, ValidationFailed
from tracking.json_text import dumps_compact
from tracking.lake.questions import BadQuestion, breakdown_of, retention_of
from tracking.lake.schema import lake_row, partition_keys
from tracking.models.canonical import CanonicalEvent
from tracking.query.lake import LakeQuestions
from tracking.query.paging import response_size
from tracking.storage.lake_engines import AthenaLake, DuckDbLake, LakeQueryFailed, literal

TODAY = date(2026, 12, 6)
PARAMS = {"from": "2026-11-01", "to": "2026-12-06"}


def at(day: str, hour: int = 12) -> int:
    return int(datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=UTC).timestamp() * 1000)


def stored(plugin: str, user: str, name: str, day: str, **fields: Any) -> CanonicalEvent:
    number = stored.count = getattr(stored, "count", 0) + 1  # type: ignore[attr-defined]
    return CanonicalEvent.model_validate(
        {
            "plugin_id": plugin,
            "user_id": user,
            "key": name,
            "dialect": "segment",
            "event_id": f"m:{number}",
            "event_time": at(day),
            "received_at": at(day),
            **fields,
        }
    )


def lake_of(tmp_path: Path, events: list[CanonicalEvent]) -> Path:
    """The events as the local Firehose writes them: one file per partition."""
    partitions: dict[tuple[str, str], list[bytes]] = {}
    for event in events:
        keys = partition_keys(event)
        row = (dumps_compact(lake_row(event)) + "\n").encode()
        partitions.setdefault((keys["plugin_id"], keys["day"]), []).append(row)
    for (plugin, day), rows in partitions.items():
        write_parquet(rows, tmp_path / "events" / f"plugin_id={plugin}" / f"day={day}" / "batch.parquet")
    return tmp_path


@pytest.fixture
def lake(tmp_path: Path) -> LakeQuestions:
    events = []
    # 60 values of popup_version: v00 opened 61 times by 1 user ... the top 50 listed, the rest summed
    for n in range(60):
        for k in range(n + 2):
            events.append(
                stored(
                    "bot", f"u{k % 3}", "bot_open", "2026-11-20", properties={"popup_version": f"v{n:02d}"}
                )
            )
    events.append(stored("bot", "u9", "bot_open", "2026-11-21"))  # no popup_version: null
    events.append(stored("bot", "crawler", "bot_open", "2026-11-21", context={"bot": True}))
    # items: each item's id, once per item
    items = {"items": [{"item_id": "A"}, {"item_id": "B"}, {"item_id": "A"}]}
    events.append(stored("bot", "buyer", "purchase", "2026-11-22", properties=items))
    # retention: day cohorts (u1 on 11-01 back on 11-02 and 11-04; u2 on 11-01; u3 on 11-02 back 11-03)
    for user, day in [("r1", "2026-11-01"), ("r1", "2026-11-02"), ("r1", "2026-11-04"), ("r2", "2026-11-01")]:
        events.append(stored("ret", user, "visit", day))
    events += [stored("ret", "r3", "visit", "2026-11-02"), stored("ret", "r3", "visit", "2026-11-03")]
    # another plugin's events never count
    events += [
        stored("other", f"x{n}", "bot_open", "2026-11-20", properties={"popup_version": "v00"})
        for n in range(5)
    ]
    return LakeQuestions(DuckDbLake(lake_of(tmp_path, events)))


def test_a_breakdown_lists_the_50_values_with_most_events_and_sums_the_rest(lake: LakeQuestions) -> None:
    status, body = lake.breakdown("bot", {**PARAMS, "event": "bot_open", "by": "properties.popup_version"})
    assert status == 200
    rows = body["rows"]
    assert len(rows) == 50
    assert rows[0] == {"value": "v59", "events": 61, "users": 3}
    assert rows[-1] == {"value": "v10", "events": 12, "users": 3}
    # v00..v09 (2..11 events each: 65 in all) and the event without a version, summed; the bot left out
    assert body["other"] == {"events": 65 + 1, "users": 4}
    assert all(row["value"] != "v00" or row["events"] == 2 for row in rows)  # "other"'s plugin: absent


def test_bots_count_when_asked_and_each_item_counts_for_items_paths(lake: LakeQuestions) -> None:
    _, without = lake.breakdown("bot", {**PARAMS, "event": "bot_open", "by": "type"})
    _, including = lake.breakdown("bot", {**PARAMS, "event": "bot_open", "by": "type", "bots": "include"})
    assert including["rows"][0]["events"] == without["rows"][0]["events"] + 1
    _, items = lake.breakdown("bot", {**PARAMS, "event": "purchase", "by": "properties.items.item_id"})
    assert items["rows"] == [{"value": "A", "events": 2, "users": 1}, {"value": "B", "events": 1, "users": 1}]


def test_retention_counts_each_cohort_and_who_came_back_each_period_later(lake: LakeQuestions) -> None:
    status, body = lake.retention("ret", {**PARAMS, "period": "day"})
    assert status == 200
    assert body["cohorts"] == [
        {"start": "2026-11-01", "users": 2, "returned": [2, 1, 0, 1]},
        {"start": "2026-11-02", "users": 1, "returned": [1, 1]},
    ]
    _, weeks = lake.retention("ret", {**PARAMS, "period": "week", "event": "visit"})
    assert weeks["cohorts"] == [
        {"start": "2026-10-26", "users": 2, "returned": [2, 1]},  # 11-01 is a Sunday
        {"start": "2026-11-02", "users": 1, "returned": [1]},
    ]


@pytest.mark.parametrize(
    ("by", "why"),
    [
        ("ip", "a column the contract does not list"),
        ("user_id", "a column the contract does not list"),
        ("properties.x') OR 1=1 --", "SQL in a property path"),
        ("properties." + ".".join(["a"] * 1000), "a path 1,000 levels deep"),
        ("properties.", "an empty path"),
        ("properties.a..b", "an empty segment"),
        ("type; DROP TABLE events", "SQL after a column"),
        ("", "nothing"),
    ],
)
def test_a_by_that_is_not_one_the_contract_allows_is_a_422(lake: LakeQuestions, by: str, why: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        lake.breakdown("bot", {**PARAMS, "event": "bot_open", "by": by})
    assert refused.value.details[0]["field"] == "by", why


def test_nothing_the_caller_sends_is_in_the_sql_and_the_plugin_is_always_bound() -> None:
    hostile = "x' OR plugin_id <> 'bot"
    question = breakdown_of({"event": hostile, "by": "properties.popup_version", **PARAMS}, TODAY)
    for dialect in ("duckdb", "athena"):
        statement = question.statement(dialect, "bot")  # type: ignore[arg-type]
        assert hostile not in statement.sql
        assert "popup_version" not in statement.sql
        assert statement.parameters[:3] == ("$.popup_version", "bot", hostile)
    retention = retention_of({"event": hostile, "period": "week", **PARAMS}, TODAY)
    assert retention.statement("athena", "bot").parameters[0] == "bot"
    # A plugin id holding a path's characters: Athena reads the partition the path names (%XX),
    # DuckDB decodes the path
    assert retention.statement("athena", "a/b").parameters[0] == "a%2Fb"
    assert retention.statement("duckdb", "a/b").parameters[0] == "a/b"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-12-07", "to": "2026-12-06"}, "from"),
        ({"from": "2020-01-01", "to": "2026-12-06"}, "from"),
        ({"from": "1999-12-01", "to": "1999-12-31"}, "from"),
        ({"from": "06/12/2026"}, "from"),
        ({"period": "month"}, "period"),
    ],
)
def test_days_and_periods_outside_the_contract_are_a_422(params: dict[str, str], field: str) -> None:
    with pytest.raises(BadQuestion) as refused:
        retention_of(params, TODAY)
    assert refused.value.field == field


class FakeAthena:
    """Athena's API as the adapter uses it: a query runs for ``polls`` state reads, then succeeds."""

    def __init__(self, polls: int, rows: list[list[str]], state: str = "SUCCEEDED") -> None:
        self.polls, self.rows, self.final = polls, rows, state
        self.started: list[dict[str, Any]] = []
        self.reads = 0

    def start_query_execution(self, **request: Any) -> dict[str, Any]:
        self.started.append(request)
        return {"QueryExecutionId": f"q-{len(self.started)}"}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        self.reads += 1
        request = self.started[int(QueryExecutionId.removeprefix("q-")) - 1]
        state = "RUNNING" if self.reads <= self.polls else self.final
        return {
            "QueryExecution": {
                "WorkGroup": request["WorkGroup"],
                "ExecutionParameters": request["ExecutionParameters"],
                "Status": {"State": state, "StateChangeReason": "Bytes scanned limit was exceeded"},
            }
        }

    def get_query_results(self, **request: Any) -> dict[str, Any]:
        header = {"Data": [{"VarCharValue": "value"}, {"VarCharValue": "listed"}, {}, {}]}
        data = [{"Data": [{"VarCharValue": v} if v is not None else {} for v in row]} for row in self.rows]
        return {"ResultSet": {"Rows": [header, *data]}}


def athena(fake: FakeAthena, wait_s: float) -> LakeQuestions:
    clock = [0.0]
    engine = AthenaLake(
        lambda: fake, "wg", "db", sleep=lambda s: clock.__setitem__(0, clock[0] + s), clock=lambda: clock[0]
    )
    return LakeQuestions(engine, wait_s=wait_s)


def test_athena_answers_within_the_wait_with_every_value_bound_as_a_literal() -> None:
    fake = FakeAthena(polls=2, rows=[["chrome", "true", "3", "2"], [None, "false", "1", "1"]])
    status, body = athena(fake, 20).breakdown("bot", {**PARAMS, "event": "it's", "by": "browser"})
    assert status == 200
    assert body["rows"] == [{"value": "chrome", "events": 3, "users": 2}]
    assert body["other"] == {"events": 1, "users": 1}
    (request,) = fake.started
    assert request["WorkGroup"] == "wg"
    assert request["QueryExecutionContext"] == {"Database": "db"}
    assert request["ExecutionParameters"] == ["'bot'", "'it''s'", "'2026-11-01'", "'2026-12-06'", "false"]


def test_a_query_past_the_wait_is_a_202_and_its_id_answers_only_its_plugin() -> None:
    fake = FakeAthena(polls=100, rows=[["2026-11-01 00:00:00.000", "0", "4"]])
    questions = athena(fake, 1)
    status, body = questions.retention("ret", PARAMS)
    assert status == 202
    query_id = body["query_id"]
    assert questions.result("ret", query_id)[0] == 202
    fake.polls = 0
    assert questions.result("ret", query_id) == (
        200,
        {"period": "day", "cohorts": [{"start": "2026-11-01", "users": 4, "returned": [4]}]},
    )
    with pytest.raises(NotFound):
        questions.result("other-plugin", query_id)
    with pytest.raises(NotFound):
        questions.result("ret", "not-a-query-id")


def test_a_query_athena_refuses_is_a_503_that_says_why() -> None:
    fake = FakeAthena(polls=0, rows=[], state="FAILED")
    with pytest.raises(LakeQueryFailed, match="Bytes scanned"):
        athena(fake, 20).breakdown("bot", {**PARAMS, "event": "e", "by": "os"})
    assert literal(True) == "true"


def test_a_query_id_asked_of_the_local_lake_is_answered_by_asking_again(lake: LakeQuestions) -> None:
    # (the local engine answers at once: a query id, say from the sample events, is asked again)
    from tracking.query.lake import _encode  # noqa: PLC0415

    question = retention_of({**PARAMS, "period": "day"}, TODAY)
    assert lake.result("ret", _encode(question, "local")) == lake.retention(
        "ret", {**PARAMS, "period": "day"}
    )


def test_the_largest_retention_answer_fits_lambdas_6_mb() -> None:
    # 400 daily cohorts (the longest range), each with users back every day after it, 9-digit counts
    question = retention_of({"from": "2025-11-02", "to": "2026-12-06", "period": "day"}, TODAY)
    rows = [
        (f"2025-11-{1 + c % 28:02d} 00:00:00.000" if c < 28 else f"{2000 + c}-01-01", later, 123_456_789)
        for c in range(400)
        for later in range(400 - c)
    ]
    body = question.body(rows)
    assert len(body["cohorts"]) == 400
    answer = dumps_compact(body)
    assert response_size(answer) < 6_000_000
