"""The dashboard page in headless Chromium (Debian's package, driven by Playwright) against the
local stack: what a person sees. Saves screenshots in tests/e2e/artifacts/."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browsers import chromium
from tests.e2e.conftest import ADMIN_KEY, Stack, eventually, run_demo
from tests.helpers import key_order

pytestmark = pytest.mark.e2e

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
    },
    "write_keys": ["wk_browser_0001"],
}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_browser_0001:").decode()}
PIXEL = "http://pixel.tracker.invalid/p.gif?who=admin"
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
                # One avatar is a third party's pixel: it must not load until the reader asks.
                "value": PIXEL if n == 1 else f"http://127.0.0.1:{stack.port}/dashboard?avatar={n}",
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
    # A crawler loads the page with the widget: stored, flagged, counted apart (the funnel stays at 4).
    crawler = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    visit = {"event": "visitor", "token": "browser_bot_99", "data": {"chatbot_id": "browser-bot"}}
    assert (
        stack.request("POST", "/api/analytics/track", visit, headers=crawler, source_ip="127.0.0.60").status
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

    # An anonymous visitor reacts, then identifies as participant-03 with traits.
    for path, call in (
        ("/v1/track", {"event": "reactions", "anonymousId": "browser-anon-3", "properties": {"value": "🎉"}}),
        (
            "/v1/identify",
            {
                "userId": "participant-03",
                "anonymousId": "browser-anon-3",
                "traits": {"name": "Zoé", "plan": "pro"},
            },
        ),
    ):
        assert stack.request("POST", path, call, headers=BASIC).status == 200

    def aggregated() -> bool:
        rows = stack.admin("GET", "/v1/plugins/browser-plugin/rows?limit=200")
        summary = stack.admin("GET", "/api/analytics/summary?chatbot_id=browser-bot")
        return (
            rows.status == 200
            and len(rows.json["rows"]) == 25
            and all(len(r["values"]) == 4 for r in rows.json["rows"])
            and stack.admin("GET", "/v1/plugins/browser-plugin/users/browser-anon-3").json.get("merged_into")
            == "participant-03"
            and summary.status == 200
            and summary.json["counts"].get("purchase") == 1
            and summary.json["counts"].get("visitor") == 4
        )

    assert eventually(aggregated), "the stream did not aggregate the seeded events"
    return stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium("the dashboard's browser test") as launched:
        yield launched


def open_dashboard(browser: Any, stack: Stack, key: str, locale: str = "en-US") -> Any:
    page = browser.new_page(locale=locale, viewport={"width": 1400, "height": 1000})
    page.goto(f"{stack.url}/dashboard")
    page.get_by_test_id("key").fill(key)
    page.get_by_test_id("connect").click()
    return page


def column_names(page: Any) -> list[str]:
    """Each header's own text (a header with several aggregations also holds their picker)."""
    names: list[str] = page.locator("[data-testid=rows] thead th").evaluate_all(
        "ths => ths.map(th => th.firstChild ? th.firstChild.textContent.trim() : '')"
    )
    return names


def test_a_person_reads_the_table_and_the_charts(browser: Any, seeded: Stack) -> None:
    page = open_dashboard(browser, seeded, ADMIN_KEY, locale="fr-FR")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.get_by_test_id("plugin").select_option("browser-plugin")
    rows = page.locator("[data-testid=rows] tbody tr")
    # Rows come in key order (by a hash of the user, docs/DESIGN.md "Key suffixes"), 20 a page.
    order = key_order(f"participant-{n:02d}" for n in range(25))
    first_page, second_page = order[:20], order[20:]
    assert "participant-01" in first_page
    assert "participant-00" in second_page
    page.locator(f"tr[data-user='{first_page[0]}']").wait_for()
    assert column_names(page) == ["Utilisateur", "Réactions", "Avatar", "Site", "Présent"]
    assert rows.count() == 20
    # An image from an origin that is not the plugin's loads only when asked for
    pixel = page.locator("tr[data-user='participant-01']")
    assert pixel.locator(".cross").inner_text() == "✗"
    assert pixel.locator("img").count() == 0
    assert not [url for url in asked if "tracker.invalid" in url]
    pixel.locator("button.show-image").click()
    assert pixel.locator("img.thumb").get_attribute("src") == PIXEL
    assert pixel.locator(".total").inner_text() == "2"
    assert pixel.locator(".counts li").all_inner_texts() == ["👏 1", "😍 1"]  # ties by value

    # Another of the column's aggregations, picked in its header, is remembered in the URL.
    page.locator("th select[data-key=reactions]").select_option("increment")
    page.wait_for_function("() => document.querySelector(\"tr[data-user='participant-01'] td.number\")")
    assert pixel.locator("td.number").first.inner_text() == "2"
    assert "agg.reactions=increment" in page.url

    page.get_by_test_id("next").click()
    page.locator(f"tr[data-user='{second_page[0]}']").wait_for()
    assert page.locator("[data-testid=rows] tbody tr").count() == 5
    assert page.get_by_test_id("next").is_disabled()
    first = page.locator("tr[data-user='participant-00']")
    assert first.locator("img.thumb").get_attribute("src").startswith("http://127.0.0.1")
    assert first.locator("a").get_attribute("href") == "https://example.com/0"
    assert first.locator(".check").inner_text() == "✓"
    page.get_by_test_id("prev").click()
    page.locator(f"tr[data-user='{first_page[0]}']").wait_for()

    page.get_by_test_id("plugin").select_option("browser-bot")
    page.get_by_test_id("summary").wait_for(state="visible")
    funnel = page.locator("[data-testid=funnel] rect")
    assert funnel.count() == 6
    # The steps named in the page's language (French here), not by their keys.
    assert page.locator("[data-testid=funnel] text").all_text_contents()[:2] == ["Visiteurs", "4"]
    assert page.locator("[data-testid=funnel] text[data-step]").all_text_contents() == [
        "Visiteurs",
        "Bot ouvert",
        "Conversation",
        "Message envoyé",
        "Panier",
        "Achat",
    ]
    assert page.locator("[data-testid=abtest] rect[data-group=control]").count() == 3
    assert page.locator("[data-testid=abtest] rect[data-group=test]").count() == 3
    # 1 of control's 3 visitors bought, none of test's 1: the comparison in words, in French.
    sentence = " ".join(page.get_by_test_id("abcompare").inner_text().split())
    assert sentence == "le groupe test convertit 33,3 points de moins, IC 95 % -86,7 à 20,0, p = 0,51"
    left_out = page.get_by_test_id("left-out").inner_text()
    assert left_out == "Non comptés ci-dessus : événements de robots 1, appels refusant le suivi 0."
    assert " ".join(page.get_by_test_id("revenue").inner_text().split()) == "91,98 €"  # French money
    assert column_names(page) == ["Utilisateur", "Visites", "Achats"]
    page.close()


def test_a_person_follows_the_days_in_either_language_on_a_wide_and_a_narrow_screen(
    browser: Any, seeded: Stack
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height in ((1280, 900), (360, 780)):
        page = browser.new_page(locale="en-US", viewport={"width": width, "height": height})
        page.goto(f"{seeded.url}/dashboard#plugin=browser-bot")
        page.get_by_test_id("key").fill(ADMIN_KEY)
        page.get_by_test_id("key").press("Enter")  # the keyboard is enough
        page.get_by_test_id("over-time").wait_for(state="visible")
        # The chart per day shows today's visits: 4 visitors, one each.
        today = page.locator("[data-testid=chart-events] circle[data-key=visitor]").last
        assert today.get_attribute("data-value") == "4"
        users = page.locator("[data-testid=chart-users] circle[data-key=visitor]").last
        assert users.get_attribute("data-value") == "4"
        assert page.get_by_test_id("rejected").is_hidden()  # nothing refused for this chatbot
        if width == 360:
            assert page.evaluate("document.documentElement.scrollWidth") <= 360 + 1  # no sideways page
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"), full_page=True)
        # Language: labels, names and numbers follow it.
        page.get_by_test_id("lang").select_option("fr")
        page.wait_for_function("() => document.documentElement.lang === 'fr'")
        page.locator("[data-testid=rows] thead th").first.wait_for()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=rows] thead th').textContent === 'Utilisateur'"
        )
        assert page.get_by_test_id("csv").inner_text() == "Télécharger le CSV"
        with page.expect_download() as download:
            page.get_by_test_id("csv").click()
        exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
        assert exported.splitlines()[0].startswith("user_id,Visites,Achats")
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}-fr.png"), full_page=True)
        # Signing out forgets the key: a reload asks for it again.
        page.get_by_test_id("signout").click()
        assert page.evaluate("sessionStorage.getItem('tracking.key')") is None
        assert page.evaluate("localStorage.length") == 0
        page.reload()
        assert page.get_by_test_id("key").input_value() == ""
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


def test_a_person_opens_a_user_and_the_admin_deletes_them(browser: Any, seeded: Stack) -> None:
    page = open_dashboard(browser, seeded, ADMIN_KEY)
    page.get_by_test_id("plugin").select_option("browser-plugin")
    page.locator("tr[data-user='participant-03'] button").click()
    person = page.get_by_test_id("person")
    person.wait_for(state="visible")
    assert page.get_by_test_id("person-id").inner_text() == "participant-03"
    traits = page.locator("[data-testid=person-traits] tr").all_inner_texts()
    assert [" ".join(t.split()) for t in traits] == ["name Zoé", "plan pro"]
    assert "browser-anon-3" in page.get_by_test_id("person-facts").inner_text()
    events = page.get_by_test_id("person-events")
    eventually(lambda: "(as browser-anon-3)" in events.inner_text())
    lines = events.inner_text().strip().splitlines()
    assert sum("reactions" in line for line in lines) == 3  # two of their own, one as the anonymous id
    times = [line.split()[0] for line in lines]
    assert times == sorted(times)  # oldest first

    ARTIFACTS.mkdir(exist_ok=True)
    person.screenshot(path=str(ARTIFACTS / "person.png"))
    page.get_by_test_id("person-delete").click()
    page.get_by_test_id("confirm-delete").wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS / "person-delete.png"))
    page.get_by_test_id("confirm-cancel").click()  # changing one's mind deletes nothing
    assert seeded.admin("GET", "/v1/plugins/browser-plugin/users/participant-03").status == 200
    page.get_by_test_id("person-delete").click()
    page.get_by_test_id("confirm-ok").click()
    status = page.get_by_test_id("status")
    assert eventually(lambda: "participant-03 deleted" in status.inner_text(), timeout_s=60), (
        status.inner_text()
    )
    assert page.locator("tr[data-user='participant-03']").count() == 0
    assert person.is_hidden()
    for gone in ("participant-03", "browser-anon-3"):
        assert seeded.admin("GET", f"/v1/plugins/browser-plugin/users/{gone}").status == 404
    page.close()


def test_a_dashboard_key_reads_a_profile_but_cannot_delete(browser: Any, seeded: Stack) -> None:
    created = seeded.admin("POST", "/v1/plugins/browser-plugin/keys", {"label": "reader"})
    page = open_dashboard(browser, seeded, created.json["key"])
    page.locator("tr[data-user='participant-04'] button").click()
    page.get_by_test_id("person").wait_for(state="visible")
    assert page.get_by_test_id("person-id").inner_text() == "participant-04"
    page.wait_for_load_state("networkidle")
    assert page.get_by_test_id("person-admin").is_hidden()
    assert page.get_by_test_id("person-delete").is_hidden()
    page.close()


def test_after_make_demo_the_daily_chart_shows_the_days_the_demo_wrote(browser: Any, seeded: Stack) -> None:
    done = run_demo(seeded)
    assert done.returncode == 0, done.stdout + done.stderr

    def visits() -> int:
        reply = seeded.admin("GET", "/v1/plugins/demo-shop-bot/series?keys=visitor")
        return sum(day["events"] for day in reply.json["series"]["visitor"]) if reply.status == 200 else 0

    assert eventually(lambda: visits() == 150, timeout_s=60), visits()
    page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 900})
    page.goto(f"{seeded.url}/dashboard#plugin=demo-shop-bot")
    page.get_by_test_id("key").fill(ADMIN_KEY)
    page.get_by_test_id("connect").click()
    page.locator("[data-testid=chart-events] circle[data-key=visitor]").first.wait_for()
    shown = page.locator("[data-testid=chart-events] circle[data-key=visitor]").evaluate_all(
        "dots => dots.map(dot => Number(dot.dataset.value))"
    )
    assert len(shown) == 30
    assert sum(shown) == 150  # every visit the demo wrote, on the days it wrote them
    page.wait_for_function(
        "() => document.querySelector('[data-testid=status]').textContent === 'demo-shop-bot'"
    )
    page.screenshot(path=str(ARTIFACTS / "dashboard-demo.png"), full_page=True)
    page.close()


def test_after_make_demo_the_lake_panels_break_down_and_show_retention_in_either_language(
    browser: Any, seeded: Stack
) -> None:
    if not any(seeded.state_dir.glob("lake/events/plugin_id=demo-shop-bot/*/*.parquet")):
        assert run_demo(seeded).returncode == 0
    landed = "SELECT count(*) FROM events WHERE plugin_id = 'demo-shop-bot' AND name = 'bot_open'"
    assert eventually(lambda: int(seeded.cli("sql", landed).splitlines()[1]) > 0 or None, timeout_s=60)
    expected = seeded.admin(
        "GET", "/v1/plugins/demo-shop-bot/breakdown?event=bot_open&by=properties.popup_version"
    ).json["rows"]
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height, language in ((1280, 900, "en"), (360, 780, "fr")):
        page = browser.new_page(locale="en-US", viewport={"width": width, "height": height})
        page.goto(f"{seeded.url}/dashboard#plugin=demo-shop-bot&lang={language}")
        page.get_by_test_id("key").fill(ADMIN_KEY)
        page.get_by_test_id("connect").click()
        page.get_by_test_id("lake").wait_for(state="visible")
        # A breakdown: pick the event and a property, bars per value
        page.get_by_test_id("lake-event").fill("bot_open")
        page.get_by_test_id("lake-by").select_option("properties.")
        page.get_by_test_id("lake-path").fill("popup_version")
        page.get_by_test_id("lake-breakdown").click()
        bars = page.locator("[data-testid=breakdown] rect")
        bars.first.wait_for()
        assert bars.evaluate_all("rects => rects.map(r => r.dataset.value)") == [
            row["value"] for row in expected
        ]
        # Retention: a table of cohorts, each first period's share 100 %
        page.get_by_test_id("lake-retention").click()
        page.get_by_test_id("retention-table").wait_for()
        first = page.locator("[data-testid=retention-table] tbody tr td:nth-child(3)").first.inner_text()
        assert first.replace("\u202f", " ").replace("\xa0", " ") in ("100%", "100 %")
        heading = page.locator("#lake h2").inner_text()
        assert heading == ("From the lake" if language == "en" else "Depuis le lac de données")
        if width == 360:
            assert page.evaluate("document.documentElement.scrollWidth") <= 360 + 1  # no sideways page
        page.screenshot(path=str(ARTIFACTS / f"dashboard-lake-{width}-{language}.png"), full_page=True)
        page.close()


class _Receiver(BaseHTTPRequestHandler):
    """A destination that refuses (410) until it is fixed."""

    protocol_version = "HTTP/1.1"
    fixed = False
    got: list[str] = []  # noqa: RUF012 - shared by its instances

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if _Receiver.fixed:
            _Receiver.got.append(message["messageId"])
        self.send_response(200 if _Receiver.fixed else 410)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_the_admin_sees_a_destinations_failures_and_sends_them_again_in_either_language(
    browser: Any, seeded: Stack
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        config = {
            "type": "webhook",
            "url": url,
            "secret": "whsec_browser-destination-1",
            "filter": {"events": ["purchase"]},
        }
        assert seeded.admin("PUT", "/v1/plugins/browser-bot/destinations/crm", config).status == 200
        for n in range(3):
            purchase = {
                "event": "purchase",
                "token": f"browser_buyer_{n:04d}",
                "data": {"chatbot_id": "browser-bot", "orderNum": f"DEST-{n}"},
            }
            assert seeded.request("POST", "/api/analytics/track", purchase).status == 200

        def failed() -> bool:
            reply = seeded.admin("GET", "/v1/plugins/browser-bot/destinations/crm")
            return bool(reply.json["failed"] == 3)

        assert eventually(failed, timeout_s=30)
        ARTIFACTS.mkdir(exist_ok=True)
        for width, height, language in ((1280, 900, "en"), (360, 780, "fr")):
            page = browser.new_page(locale="en-US", viewport={"width": width, "height": height})
            page.goto(f"{seeded.url}/dashboard#plugin=browser-bot&lang={language}")
            page.get_by_test_id("key").fill(ADMIN_KEY)
            page.get_by_test_id("connect").click()
            row = page.get_by_test_id("destination-crm")
            row.wait_for()
            assert "HTTP 410" in row.inner_text()
            assert "whsec_" not in page.content()  # the secret is never on the page
            page.get_by_test_id("failures-crm").click()
            failures = page.locator("[data-testid=failures-body] tr")
            failures.first.wait_for()
            assert failures.count() == 3
            heading = page.locator("#destinations h2").inner_text()
            assert heading == "Destinations"
            assert page.get_by_test_id("failures-retry").inner_text() == (
                "Send them all again" if language == "en" else "Tout renvoyer"
            )
            if width == 360:
                assert page.evaluate("document.documentElement.scrollWidth") <= 360 + 1  # no sideways page
            page.screenshot(
                path=str(ARTIFACTS / f"dashboard-destinations-{width}-{language}.png"), full_page=True
            )
            page.close()
        # Fixed, then sent again from the page: the three arrive, and the failures are gone.
        _Receiver.fixed = True
        page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 900})
        page.goto(f"{seeded.url}/dashboard#plugin=browser-bot")
        page.get_by_test_id("key").fill(ADMIN_KEY)
        page.get_by_test_id("connect").click()
        page.get_by_test_id("failures-crm").click()
        page.locator("[data-testid=failures-body] tr").first.wait_for()
        page.get_by_test_id("failures-retry").click()
        assert eventually(lambda: len(set(_Receiver.got)) == 3, timeout_s=30)
        page.locator("#no-failures:not(.hidden)").wait_for()
        page.close()
        assert seeded.admin("GET", "/v1/plugins/browser-bot/destinations/crm/failures").json["failures"] == []
    finally:
        server.shutdown()
        server.server_close()
