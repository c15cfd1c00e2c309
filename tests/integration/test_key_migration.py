"""The upgrade from the first key layout: the aggregates table exactly as the previous version left it
(``tests/data/layout-1.json``, written by that version: see ``make_layout_1.py``), moved by
``tracking-local migrate-keys``, answers what that version answered: every row, the summary, a
linked person. Run again, it changes nothing; run after the aggregator wrote the new layout first,
it leaves the old item and says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack.tools.migrate_keys import migrate, new_key
from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import Invoke, body, scan
from tracking.keys import SEP, spread_pk_parts
from tracking.storage.aggregates import AggregateStore

FIXTURE = json.loads((Path(__file__).parents[1] / "data" / "layout-1.json").read_text(encoding="utf-8"))
ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
PLUGIN = FIXTURE["plugin"]


def load_previous_layout(aws: Any, query: Invoke) -> None:
    answer = query(api_event("PUT", f"/v1/plugins/{PLUGIN}/config", FIXTURE["config"], headers=ADMIN))
    assert answer["statusCode"] == 200
    items = FIXTURE["items"]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        aws.batch_write_item(RequestItems={"AggregatesTable": requests})


def every_row(query: Invoke) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    cursor: str | None = None
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        page = body(query(api_event("GET", f"/v1/plugins/{PLUGIN}/rows", headers=ADMIN, query=params)))
        rows.update({row["user_id"]: row["values"] for row in page["rows"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def summary(query: Invoke) -> dict[str, Any]:
    params = {"chatbot_id": PLUGIN, "from": FIXTURE["day"], "to": FIXTURE["day"]}
    answer: dict[str, Any] = body(
        query(api_event("GET", "/api/analytics/summary", headers=ADMIN, query=params))
    )
    return answer


def test_the_previous_layout_migrated_answers_as_the_previous_version_did(aws: Any, query: Invoke) -> None:
    load_previous_layout(aws, query)
    assert every_row(query) == {}  # unmigrated, the new layout finds nothing: the test is not vacuous
    done = migrate(aws, "AggregatesTable")
    assert (done.moved, done.already, done.conflicts) == (len(FIXTURE["items"]), 0, [])
    assert every_row(query) == FIXTURE["rows"]
    # As the route sends the service's answer: without its null fields.
    answered = summary(query)
    # Fields added since the fixture was taken (issue 26): the A/B comparison, the opted-out and bot counts.
    assert answered.pop("opted_out") == 0
    assert answered.pop("bots") == 0
    assert set(answered["ab_test"].pop("comparison")) == {"difference", "ci95", "p_value"}
    assert answered == {name: v for name, v in FIXTURE["summary"].items() if v is not None}
    # Nothing is left under a first-layout key; every item sits under a suffixed one, listed.
    left = [item["pk"]["S"] for item in scan(aws, "AggregatesTable") if item["pk"]["S"].count(SEP) == 1]
    assert left == [f"s{SEP}{PLUGIN}"]  # only the plugin's suffixes item, which is new
    moved = [item["pk"]["S"] for item in scan(aws, "AggregatesTable") if item["pk"]["S"] != left[0]]
    spread = [parts for pk in moved if (parts := spread_pk_parts(pk))]
    assert len(spread) == len([pk for pk in moved if not pk.startswith(f"f{SEP}")])  # funnels: by user
    listed = AggregateStore(aws, "AggregatesTable").suffixes(PLUGIN)
    assert {n for kind, _, n in spread if kind == "users"} == set(listed.users)
    assert {n for kind, _, n in spread if kind == "rollups"} == set(listed.rollups)


def test_a_second_run_and_a_run_cut_short_change_nothing(aws: Any, query: Invoke) -> None:
    load_previous_layout(aws, query)
    # A run cut short: the first item copied, its old key not yet deleted.
    first = FIXTURE["items"][0]
    copied = {**first, "pk": {"S": new_key(first)}}
    aws.put_item(TableName="AggregatesTable", Item=copied)
    done = migrate(aws, "AggregatesTable")
    assert (done.moved, done.already, done.conflicts) == (len(FIXTURE["items"]) - 1, 1, [])
    again = migrate(aws, "AggregatesTable")
    assert (again.moved, again.already, again.conflicts) == (0, 0, [])
    assert every_row(query) == FIXTURE["rows"]


def test_an_item_the_new_layout_already_holds_is_left_and_reported(aws: Any, query: Invoke) -> None:
    load_previous_layout(aws, query)
    first = FIXTURE["items"][0]
    newer = {**first, "pk": {"S": new_key(first)}, "done": {"N": "999"}}
    aws.put_item(TableName="AggregatesTable", Item=newer)
    done = migrate(aws, "AggregatesTable")
    assert done.conflicts == [(first["pk"]["S"], first["sk"]["S"])]
    key = {"pk": first["pk"], "sk": first["sk"]}
    assert aws.get_item(TableName="AggregatesTable", Key=key)["Item"] == first  # left where it was
