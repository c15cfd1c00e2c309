"""The dashboard over time, through the handlers (on moto): daily series with exact distinct users, the
ordered funnel under late events and retries, chatbots that only ever sent widget events, and
dashboard keys that can be listed and revoked."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import TEMPLATE, Invoke, aggregate_stored_events, body, new_container
from tests.replay import BASE_TIME, Planned, replay, with_faults
from tests.streams import canonical
from tracking.keys import funnel_key
from tracking.models.funnel import FUNNEL

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
DAY = 86_400_000
EXAMPLES = int(os.environ.get("FUNNEL_EXAMPLES", "40"))


def day(n: int) -> str:
    return datetime.fromtimestamp((BASE_TIME + n * DAY) / 1000, UTC).strftime("%Y-%m-%d")


def widget(ingest: Invoke, event: str, token: str, chatbot: str = "bot-1", **data: Any) -> None:
    call = {"event": event, "token": token, "data": {"chatbot_id": chatbot, **data}}
    answer = ingest(api_event("POST", "/api/analytics/track", call))
    assert answer["statusCode"] == 200, answer


def get(query: Invoke, path: str, key: str = SAMPLE_ADMIN_KEY, **params: str) -> dict[str, Any]:
    return query(api_event("GET", path, headers={"x-api-key": key}, query=params or None))


@pytest.fixture(autouse=True)
def no_limits(function_env: Any) -> None:
    function_env(RATE_LIMIT_PER_MINUTE="0")


# -- series ------------------------------------------------------------------------------------------


def test_series_counts_events_and_distinct_users_per_day_zero_filled(
    query: Invoke, aggregate: Invoke, aws: Any
) -> None:
    # Given events written straight to the stream: u1 three times on day 0 and once on day 2, u2 on
    # day 0 (group test), and a late event of u3 for day 0 arriving after day 2's
    events = [
        canonical("visitor", user="u1", plugin="p9", at=BASE_TIME + 1),
        canonical("visitor", user="u1", plugin="p9", at=BASE_TIME + 2),
        canonical("visitor", user="u2", plugin="p9", at=BASE_TIME + 3, ab_group="test"),
        canonical("visitor", user="u1", plugin="p9", at=BASE_TIME + 2 * DAY),
        canonical("bot_open", user="u1", plugin="p9", at=BASE_TIME + 2 * DAY + 5),
        canonical("visitor", user="u1", plugin="p9", at=BASE_TIME + 4),
        canonical("visitor", user="u3", plugin="p9", at=BASE_TIME + 50),
    ]
    from tests.streams import invocation, stream_record  # noqa: PLC0415
    from tracking.storage.events import event_to_item  # noqa: PLC0415

    records = [stream_record(n, None, image=event_to_item(e, 2_000_000_000)) for n, e in enumerate(events, 1)]
    for start in (0, 4):  # two batches: the late one after day 2's
        assert aggregate(invocation("shard-1", records[start : start + 4]))["batchItemFailures"] == []
    # When the series of three days is read
    answer = get(query, "/v1/plugins/p9/series", keys="visitor,bot_open", **{"from": day(0), "to": day(2)})
    # Then each day has its events and its distinct users, and days without any are zeros
    assert answer["statusCode"] == 200, answer
    series = body(answer)["series"]
    assert series["visitor"] == [
        {"day": day(0), "events": 5, "users": 3},
        {"day": day(1), "events": 0, "users": 0},
        {"day": day(2), "events": 1, "users": 1},
    ]
    assert [d["events"] for d in series["bot_open"]] == [0, 0, 1]
    # and the funnel's own rollups are no key's
    assert get(query, "/v1/plugins/p9/series", keys=funnel_key(1))["statusCode"] == 200
    assert all(d["events"] == 0 for d in body(get(query, "/v1/plugins/p9/series", keys="x"))["series"]["x"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2024-01-01", "to": "2025-02-05"}, "from"),  # 402 days
        ({"from": "2025-02-05", "to": "2025-01-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"keys": ",".join(f"k{n}" for n in range(21))}, "keys"),
    ],
)
def test_series_refuses_what_it_cannot_answer(query: Invoke, params: dict[str, str], field: str) -> None:
    answer = get(query, "/v1/plugins/p9/series", **{"keys": "visitor", **params})
    assert answer["statusCode"] == 422
    assert body(answer)["error"]["details"][0]["field"] == field


# -- the ordered funnel ---------------------------------------------------------------------------


@dataclass
class FunnelCase:
    events: list[tuple[str, str, int]]  # (user, step, event time)
    first: int  # the summary's days
    last: int


@st.composite
def funnel_cases(draw: st.DrawFn) -> FunnelCase:
    events = []
    for n in range(draw(st.integers(1, 8))):
        # Each user visits 0 to 3 times and does some later steps (skipping any, some twice), each on
        # any of 4 days: in whatever order they arrive, the earliest visit is the user's cohort.
        visits = ["visitor"] * draw(st.integers(0, 3))
        for step in visits + draw(st.lists(st.sampled_from(FUNNEL[1:]), max_size=7)):
            at = BASE_TIME + draw(st.integers(0, 3)) * DAY + draw(st.integers(0, 10_000))
            events.append((f"t{n}", step, at))
    first = draw(st.integers(0, 3))
    return FunnelCase(draw(st.permutations(events)), first, draw(st.integers(first, 3)))


def expected_funnel(case: FunnelCase) -> list[int]:
    """Users who first visited within the days asked, by the steps they did in order (any time)."""
    reached = [0] * len(FUNNEL)
    for user in {u for u, _, _ in case.events}:
        done = {step for u, step, _ in case.events if u == user}
        visits = [at for u, step, at in case.events if u == user and step == "visitor"]
        if not visits or not (case.first <= (min(visits) - BASE_TIME) // DAY <= case.last):
            continue
        for n, step in enumerate(FUNNEL):
            if step not in done:
                break
            reached[n] += 1
    return reached


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(funnel_cases(), st.data())
def test_the_funnel_is_ordered_and_exact_whatever_the_arrival_order_and_the_retries(
    case: FunnelCase, data: st.DataObject
) -> None:
    # Given the events in arrival order (late ones included), over two shards, with injected failures
    shards: dict[str, list[Planned]] = {"shard-A": [], "shard-B": []}
    for n, (user, step, at) in enumerate(case.events):
        shard = data.draw(st.sampled_from(sorted(shards)))
        event = canonical(step, user=user, plugin="bot", at=at, event_id=f"g:{n:08d}", dialect="widget")
        shards[shard].append(Planned(shard, 1000 + n, event))
    scenario = with_faults(data.draw, shards)
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        for definition in TEMPLATE.table_definitions().values():
            dynamodb.create_table(**definition["create"])
        assert replay(scenario, new_container("AggregateFunction")).on_failure == []
        query = new_container("QueryFunction")
        # When the summary of some of the days is read
        answer = get(
            query,
            "/api/analytics/summary",
            chatbot_id="bot",
            **{"from": day(case.first), "to": day(case.last)},
        )
    # Then no step holds more users than the one before, and each holds exactly the users who
    # first visited in those days and did it and every step before it
    users = [step["users"] for step in body(answer)["funnel"]] if answer["statusCode"] == 200 else [0] * 6
    assert users == sorted(users, reverse=True)
    assert users == expected_funnel(case)


# -- chatbots with widget events only ---------------------------------------------------------------


def test_a_chatbot_with_only_widget_events_is_listed_readable_and_exportable(
    ingest: Invoke, query: Invoke, aggregate: Invoke, aws: Any
) -> None:
    widget(ingest, "visitor", "token_widget_only_1", chatbot="widget-only")
    widget(ingest, "bot_open", "token_widget_only_1", chatbot="widget-only")
    widget(ingest, "visitor", "token_widget_only_2", chatbot="widget-only")
    aggregate_stored_events(aws, aggregate)
    listed = [p["plugin_id"] for p in body(get(query, "/v1/plugins"))["plugins"]]
    assert "widget-only" in listed
    columns = body(get(query, "/v1/plugins/widget-only/columns", lang="fr"))["columns"]
    assert len(columns) == 13
    assert (columns[0]["key"], columns[0]["name"], columns[-1]["name"]) == ("visitor", "Visites", "Erreurs")
    rows = body(get(query, "/v1/plugins/widget-only/rows"))["rows"]
    assert {row["user_id"]: row["values"]["visitor"]["value"] for row in rows} == {
        "token_widget_only_1": 1,
        "token_widget_only_2": 1,
    }
    one = body(get(query, "/v1/plugins/widget-only/users/token_widget_only_1"))
    assert one["values"]["bot_open"]["value"] == 1
    exported = get(query, "/v1/plugins/widget-only/export.csv", lang="en")
    assert exported["statusCode"] == 200
    table = list(csv.reader(io.StringIO(exported["body"].lstrip("\ufeff"))))
    assert table[0][:3] == ["user_id", "Visits", "Pop-ups displayed"]
    assert len(table) == 3
    # The admin config route still says it has no config of its own.
    assert get(query, "/v1/plugins/widget-only/config")["statusCode"] == 404
    assert get(query, "/v1/plugins/never-seen/columns")["statusCode"] == 404


# -- keys -------------------------------------------------------------------------------------------


def test_keys_are_listed_without_the_key_and_a_revoked_key_is_refused_at_once(
    query: Invoke, demo_config: Any
) -> None:
    created = body(query(api_event("POST", "/v1/plugins/demo-plugin/keys", {"label": "team"}, headers=ADMIN)))
    key, key_id = created["key"], created["key_id"]
    assert get(query, "/v1/plugins/demo-plugin/columns", key=key)["statusCode"] == 200
    listed = body(get(query, "/v1/plugins/demo-plugin/keys"))["keys"]
    assert [(k["key_id"], k["label"], k["last4"]) for k in listed] == [(key_id, "team", key[-4:])]
    assert listed[0]["last_used"] is not None  # the read above
    assert all(key not in str(entry) and key[3:] not in str(entry) for entry in listed)
    # A dashboard key may neither list nor revoke keys.
    assert get(query, "/v1/plugins/demo-plugin/keys", key=key)["statusCode"] == 403
    revoked = query(api_event("DELETE", f"/v1/plugins/demo-plugin/keys/{key_id}", headers=ADMIN))
    assert body(revoked) == {"key_id": key_id, "revoked": True}
    # The same container that served the key a moment ago refuses it now.
    answer = get(query, "/v1/plugins/demo-plugin/columns", key=key)
    assert (answer["statusCode"], body(answer)["error"]["code"]) == (401, "UNAUTHORIZED")
    assert body(get(query, "/v1/plugins/demo-plugin/keys"))["keys"] == []
    again = query(api_event("DELETE", f"/v1/plugins/demo-plugin/keys/{key_id}", headers=ADMIN))
    assert again["statusCode"] == 404
