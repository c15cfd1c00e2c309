"""`make demo` fills a fresh stack's dashboards through the HTTP API."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import Stack, eventually, run_demo

pytestmark = pytest.mark.e2e


def test_demo_traffic_fills_the_plugin_and_the_chatbot(stack: Stack) -> None:
    done = run_demo(stack)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100% (" in done.stderr  # the progress bar got to the end
    assert "(0 refused)" in done.stdout

    # Every stored purchase counted too: the last visitors' purchases come after the last visit.
    purchases = sum(1 for e in stack.stored() if e["plugin_id"] == "demo-shop-bot" and e["key"] == "purchase")

    def filled() -> dict[str, object] | None:
        summary = stack.admin("GET", "/api/analytics/summary?chatbot_id=demo-shop-bot")
        rows = stack.admin("GET", "/v1/plugins/webinar-reactions/rows?limit=200")
        if summary.status != 200 or rows.status != 200 or len(rows.json["rows"]) < 60:
            return None
        counts = summary.json["counts"]
        return summary.json if (counts.get("visitor"), counts.get("purchase")) == (150, purchases) else None

    deadline = time.monotonic() + 30
    result = filled()
    while result is None and time.monotonic() < deadline:
        time.sleep(0.5)
        result = filled()
    assert result is not None, "the demo's events were not all aggregated"
    assert result["counts"]["purchase"] > 0
    assert result["revenue_eur"] > 0
    assert result["ab_test"]["control"]["users"] > 0
    assert result["ab_test"]["test"]["users"] > 0
    # The ordered funnel never grows from one step to the next.
    users = [step["users"] for step in result["funnel"]]
    assert users == sorted(users, reverse=True)
    assert users[0] > 0
    # The days the demo wrote show in the chatbot's daily series: every visit, every visitor.
    series = stack.admin("GET", "/v1/plugins/demo-shop-bot/series?keys=visitor,purchase")
    assert series.status == 200, series.raw
    visits = series.json["series"]["visitor"]
    assert len(visits) == 30
    assert sum(day["events"] for day in visits) == 150
    written = [day for day in visits if day["events"]]
    assert written
    assert all(0 < day["users"] <= day["events"] for day in written)
    assert sum(day["events"] for day in series.json["series"]["purchase"]) == result["counts"]["purchase"]
    # and a plugin's too
    reactions = stack.admin("GET", "/v1/plugins/webinar-reactions/series")
    assert reactions.status == 200
    assert any(day["events"] for days in reactions.json["series"].values() for day in days)


README = (ROOT / "README.md").read_text(encoding="utf-8")
ANSWERS = {  # what each of the README's questions may answer over the demo's traffic
    "popup": {"spring-a", "spring-b"},
    "way": {"popup", "chat_button"},
    "utm_source": {"newsletter", "ads", "search", ""},
}


def test_the_readmes_lake_questions_answer_over_the_demos_traffic(stack: Stack) -> None:
    done = run_demo(stack)
    assert done.returncode == 0, done.stdout + done.stderr
    statements = re.findall(r'tracking-local sql "(.*?)"', README, flags=re.DOTALL)
    assert len(statements) == 3

    def landed() -> bool | None:
        visitors = stack.cli("sql", "SELECT count(*) FROM events WHERE plugin_id = 'demo-shop-bot'")
        return int(visitors.splitlines()[1]) >= 150 or None  # every visitor's first event at least

    eventually(landed, timeout_s=60)
    for statement in statements:
        header, *lines = stack.cli("sql", statement).splitlines()
        name, _ = header.split("\t")
        assert lines, statement
        for line in lines:
            value, count = line.split("\t")
            assert value in ANSWERS[name], (statement, line)
            assert int(count) > 0
    # And the demo's month of imported page views spreads over the days it names: retention has a shape
    days = "SELECT count(DISTINCT day) FROM events WHERE plugin_id = 'webinar-reactions' AND type = 'page'"
    assert eventually(lambda: int(stack.cli("sql", days).splitlines()[1]) >= 10 or None, timeout_s=60)
    reply = stack.admin("GET", "/v1/plugins/webinar-reactions/retention?event=page")
    assert reply.status == 200, reply.raw
    cohorts = reply.json["cohorts"]
    assert len(cohorts) >= 10
    assert any(n > 0 for cohort in cohorts for n in cohort["returned"][1:])
