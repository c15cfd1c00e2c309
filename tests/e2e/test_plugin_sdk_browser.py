"""The plugin's own browser SDK (``GET /sdk/tracking.js``) on a plugin's page in headless Chromium,
against ``make run``'s stack: the page, served from an allowed origin, imports the SDK from the API
and calls ``tracking.Event.track({key, value})``. Between the browser and the stack stands a gateway
(this test's) that answers a third of the SDK's posts 503 itself, drops the connection on others,
before forwarding and after (the call stored, its answer lost), and goes down for 10 s. Every call
must be counted exactly once, through a reload halfway and the outage; and the dashboard's live
panel shows a call, in either width. Screenshots land in tests/e2e/artifacts/."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devstack.local.dynamodb import free_port
from tests.e2e.browsers import chromium
from tests.e2e.conftest import ADMIN_KEY, Stack, eventually
from tests.e2e.gateway import Dropped, Gateway, running

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PLUGIN = "sdk-plugin"
TRACK = f"/v1/plugins/{PLUGIN}/track"
USER = "participant-42"
# A person's browser (headless Chromium's own agent is a bot's, rightly left out of the counts; a
# context's agent is not the one a keepalive fetch sent on pagehide carries: the browser's is).
AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
VALUES = ("😍", "😱", "👍", "🎉", "🤔")
# What the gateway does with each post to the track route, in turn: a third answered 503, some
# dropped before they reach the stack, some after (stored, the answer lost), the rest relayed.
PLAN = ("503", "drop", "ok", "lost", "503", "ok")


@dataclass
class FaultyGateway(Gateway):
    plan: Iterator[str] = field(default_factory=lambda: itertools.cycle(PLAN))
    down: bool = False
    outcomes: list[str] = field(default_factory=list)

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        if self.down:
            raise Dropped
        if method != "POST" or urlsplit(path).path != TRACK:
            return super().forward(method, path, headers, body)
        with self.lock:
            step = next(self.plan)
            self.outcomes.append(step)
        if step == "503":
            self.fail(TRACK, 503)
        elif step == "drop":
            raise Dropped
        answer = super().forward(method, path, headers, body)
        if step == "lost":
            raise Dropped
        return answer


def serve_page(port: int, api: str) -> ThreadingHTTPServer:
    """The plugin's page: it imports the SDK from the API (another origin), as ``window.tracking``."""
    options = json.dumps({"apiUrl": api, "pluginId": PLUGIN, "userId": USER, "flushInterval": 300})
    page = f"""<!doctype html><meta charset="utf-8"><title>Webinar</title>
<script type="module">
import Tracking from "{api}/sdk/tracking.js";
window.tracking = Tracking.init({options});
</script>Webinar""".encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def counted(stack: Stack) -> dict[str, Any] | None:
    answer = stack.admin("GET", f"/v1/plugins/{PLUGIN}/users/{USER}")
    if answer.status != 200:
        return None
    values: dict[str, Any] = answer.json["values"]
    found: dict[str, Any] | None = values.get("reactions", {}).get("value")
    return found


def track(page: Any, calls: list[str]) -> None:
    page.wait_for_function("() => window.tracking !== undefined")
    page.evaluate(
        "(values) => values.forEach((value) => window.tracking.Event.track({key: 'reactions', value}))", calls
    )


def test_every_call_counts_once_through_503s_dropped_connections_a_reload_and_an_outage(stack: Stack) -> None:
    port = free_port()
    origin = f"http://localhost:{port}"
    config = {
        "tracking": {
            "events": [
                {
                    "key": "reactions",
                    "name": {"en": "Reactions", "fr": "Réactions"},
                    "aggregations": ["group_array", "increment"],
                    "value_type": "string",
                }
            ]
        },
        "allowed_origins": [origin],
    }
    assert stack.admin("PUT", f"/v1/plugins/{PLUGIN}/config", config).status == 200
    gateway = FaultyGateway(stack)
    with running(gateway), chromium("the plugin SDK's browser test", user_agent=AGENT) as launched:
        site = serve_page(port, gateway.url)
        try:
            context = launched.new_context()
            page = context.new_page()
            page.goto(origin + "/")
            sent = [VALUES[n % len(VALUES)] for n in range(50)]
            # Given 25 calls, and the page reloaded before all of them went out
            track(page, sent[:25])
            page.reload()
            # When the 25 others are tracked on the reloaded page
            track(page, sent[25:])
            # Then each of the 50 is counted once, whatever the gateway did to their requests
            expected = {"total": 50, "counts": {value: sent.count(value) for value in VALUES}}
            found = eventually(
                lambda: (value := counted(stack)) and value == expected and value, timeout_s=60
            )
            assert found == expected, (counted(stack), gateway.outcomes)
            assert {"503", "drop", "lost"} <= set(gateway.outcomes)  # every fault happened
            # The SDK acknowledges them all (the retries of a lost answer find them stored), and no late
            # retry counts anything twice
            assert eventually(lambda: page.evaluate("() => window.tracking.pending()") == 0, timeout_s=60)
            assert counted(stack) == expected

            # Given the network down for 10 s while 5 more calls are tracked
            gateway.down = True
            track(page, ["🌙"] * 5)
            time.sleep(10)
            assert page.evaluate("() => window.tracking.pending()") == 5
            gateway.down = False
            # Then they arrive once it is back (the SDK's backoff is at most 30 s)
            after = eventually(
                lambda: (value := counted(stack)) and value["total"] == 55 and value, timeout_s=45
            )
            assert after, counted(stack)
            assert (after["total"], after["counts"]["🌙"]) == (55, 5)
            context.close()
        finally:
            site.shutdown()

        # The dashboard's live panel shows a call tracked now: the route within 5 s of its
        # acknowledgement, the panel at its next refresh (every 5 s while the tab is visible).
        reply = stack.request(
            "POST",
            TRACK,
            {"key": "reactions", "value": "live-check", "user_id": "participant-live"},
            headers={"User-Agent": AGENT},
        )
        assert reply.status == 200
        acknowledged = time.monotonic()

        def listed() -> bool:
            found = stack.admin("GET", f"/v1/plugins/{PLUGIN}/events/recent?limit=5")
            return any(e["user_id"] == "participant-live" for e in found.json["events"])

        assert eventually(listed, timeout_s=5), "not in the live view within 5 s"
        assert time.monotonic() - acknowledged <= 5
        for width, height, language in ((1280, 900, "en"), (360, 780, "fr")):
            dashboard = launched.new_page(viewport={"width": width, "height": height})
            dashboard.goto(f"{stack.url}/dashboard#plugin={PLUGIN}&lang={language}")
            dashboard.fill("[data-testid=key]", ADMIN_KEY)
            dashboard.click("[data-testid=connect]")
            item = dashboard.locator("[data-testid=live-event]", has_text="participant-live").first
            item.wait_for(timeout=10_000)
            item.locator("summary").click()  # opened to its JSON
            assert '"value": "live-check"' in item.locator("pre").inner_text()
            state = "mis à jour" if language == "fr" else "updated"
            assert state in dashboard.locator("[data-testid=live-state]").inner_text()
            if width == 360:
                assert (
                    dashboard.evaluate("document.documentElement.scrollWidth") <= 360 + 1
                )  # no sideways page
            ARTIFACTS.mkdir(exist_ok=True)
            dashboard.locator("[data-testid=live]").scroll_into_view_if_needed()
            dashboard.screenshot(
                path=str(ARTIFACTS / f"dashboard-live-{width}-{language}.png"), full_page=True
            )
            dashboard.close()
