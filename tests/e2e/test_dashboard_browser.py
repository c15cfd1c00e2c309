"""The dashboard page in headless Chromium (Debian's package, driven by Playwright) against the
local stack: what a person sees. Saves tests/e2e/artifacts/dashboard.png."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import ADMIN_KEY, Stack, eventually

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PLUGIN = {
    "tracking": {
        "events": [
            {
                "key": "reactions",
                "name": {"en": "Reactions", "fr": "Réactions"},
                "aggregations": ["group_array", "increment"],
                "value_type": "string",
            },
            {
                "key": "avatar",
                "name": {"en": "Avatar", "fr": "Avatar"},
                "aggregations": ["string"],
                "value_type": "image",
            },
            {
                "key": "homepage",
                "name": {"en": "Homepage", "fr": "Site"},
                "aggregations": ["string"],
                "value_type": "url",
            },
            {
                "key": "attended",
                "name": {"en": "Attended", "fr": "Présent"},
                "aggregations": ["string"],
                "value_type": "boolean",
            },
        ]
    }
}
CHATBOT = {
    "tracking": {
        "events": [
            {"key": "visitor", "name": {"en": "Visits", "fr": "Visites"}, "aggregations": ["increment"]},
            {"key": "purchase", "name": {"en": "Purchases", "fr": "Achats"}, "aggregations": ["increment"]},
        ]
    }
}


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    assert stack.admin("PUT", "/v1/plugins/browser-plugin/config", PLUGIN).status == 200
    assert stack.admin("PUT", "/v1/plugins/browser-bot/config", CHATBOT).status == 200
    events = []
    for n in range(25):
        user = f"participant-{n:02d}"
        events += [
            {"key": "reactions", "value": "😍", "user_id": user},
            {"key": "reactions", "value": "👏", "user_id": user},
        ]
        events += [
            {
                "key": "avatar",
                "value": f"http://127.0.0.1:{stack.port}/dashboard?avatar={n}",
                "user_id": user,
            },
            {"key": "homepage", "value": f"https://example.com/{n}", "user_id": user},
            {"key": "attended", "value": n % 2 == 0, "user_id": user},
        ]
    for start in range(0, len(events), 100):
        assert (
            stack.request(
                "POST", "/v1/plugins/browser-plugin/track", {"events": events[start : start + 100]}
            ).status
            == 200
        )
    for n, token in enumerate(["browser_vis_00", "browser_vis_10", "browser_vis_20", "browser_vis_31"]):
        ip = f"127.0.0.{50 + n}"
        assert (
            stack.request(
                "POST",
                "/api/analytics/track",
                {"event": "visitor", "token": token, "ab_test": True, "data": {"chatbot_id": "browser-bot"}},
                source_ip=ip,
            ).status
            == 200
        )
    purchase = {
        "event": "purchase",
        "token": "browser_vis_00",
        "ab_test": True,
        "data": {
            "chatbot_id": "browser-bot",
            "orderNum": "B-1",
            "items": [{"item_id": "SKU-1", "value": 49.99, "quantity": 2, "currency": "USD"}],
        },
    }
    assert stack.request("POST", "/api/analytics/track", purchase, source_ip="127.0.0.50").status == 200

    def aggregated() -> bool:
        rows = stack.admin("GET", "/v1/plugins/browser-plugin/rows?limit=200")
        summary = stack.admin("GET", "/api/analytics/summary?chatbot_id=browser-bot")
        return (
            rows.status == 200
            and len(rows.json["rows"]) == 25
            and all(len(r["values"]) == 4 for r in rows.json["rows"])
            and summary.status == 200
            and summary.json["counts"].get("purchase") == 1
            and summary.json["counts"].get("visitor") == 4
        )

    assert eventually(aggregated), "the stream did not aggregate the seeded events"
    return stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Chromium not found: the dashboard's browser test needs Debian's `chromium` package")

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


def open_dashboard(browser: Any, stack: Stack, key: str, locale: str = "en-US") -> Any:
    page = browser.new_page(locale=locale, viewport={"width": 1400, "height": 1000})
    page.goto(f"{stack.url}/dashboard")
    page.get_by_test_id("key").fill(key)
    page.get_by_test_id("connect").click()
    return page


def test_a_person_reads_the_table_and_the_charts(browser: Any, seeded: Stack) -> None:
    page = open_dashboard(browser, seeded, ADMIN_KEY, locale="fr-FR")
    page.get_by_test_id("plugin").select_option("browser-plugin")
    rows = page.locator("[data-testid=rows] tbody tr")
    rows.first.wait_for()
    headers = page.locator("[data-testid=rows] thead th").all_inner_texts()
    assert [h.strip().lower() for h in headers] == ["user", "réactions", "avatar", "site", "présent"]
    assert rows.count() == 20
    first = page.locator("tr[data-user='participant-00']")
    assert first.locator("img.thumb").get_attribute("src").startswith("http://127.0.0.1")
    assert first.locator("a").get_attribute("href") == "https://example.com/0"
    assert first.locator(".check").inner_text() == "✓"
    assert page.locator("tr[data-user='participant-01'] .cross").inner_text() == "✗"
    assert first.locator(".total").inner_text() == "2"
    assert first.locator(".counts li").all_inner_texts() == ["😍 1", "👏 1"]

    page.get_by_test_id("next").click()
    page.locator("tr[data-user='participant-20']").wait_for()
    assert page.locator("[data-testid=rows] tbody tr").count() == 5
    assert page.get_by_test_id("next").is_disabled()
    page.get_by_test_id("prev").click()
    page.locator("tr[data-user='participant-00']").wait_for()

    page.get_by_test_id("plugin").select_option("browser-bot")
    page.get_by_test_id("summary").wait_for(state="visible")
    funnel = page.locator("[data-testid=funnel] rect")
    assert funnel.count() == 6
    assert page.locator("[data-testid=funnel] text").all_text_contents()[:2] == ["visitor", "4"]
    assert page.locator("[data-testid=abtest] rect[data-group=control]").count() == 3
    assert page.locator("[data-testid=abtest] rect[data-group=test]").count() == 3
    assert page.get_by_test_id("revenue").inner_text() == "91.98 €"
    headers = page.locator("[data-testid=rows] thead th").all_inner_texts()
    assert [h.strip().lower() for h in headers] == ["user", "visites", "achats"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.close()


def test_a_dashboard_key_sees_its_plugin_only(browser: Any, seeded: Stack) -> None:
    created = seeded.admin("POST", "/v1/plugins/browser-plugin/keys", {"label": "browser test"})
    assert created.status == 201
    page = open_dashboard(browser, seeded, created.json["key"])
    page.locator("[data-testid=rows] tbody tr").first.wait_for()
    options = page.locator("[data-testid=plugin] option").all_inner_texts()
    assert options == ["browser-plugin"]
    page.close()


def test_a_wrong_key_is_told_so(browser: Any, seeded: Stack) -> None:
    page = open_dashboard(browser, seeded, "dk_wrong")
    status = page.get_by_test_id("status")
    eventually(lambda: "Unknown API key" in status.inner_text())
    assert "Unknown API key" in status.inner_text()
    page.close()
