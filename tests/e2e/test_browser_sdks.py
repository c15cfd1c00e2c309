"""The browser SDKs people put on their sites, unmodified, in headless Chromium, posting cross-origin
to the local stack as a real site does: analytics.js (Segment's analytics-next), Customer.io's
cdp-analytics-browser and RudderStack's analytics-js. Nothing intercepts a request inside the browser:
CORS preflights are the browser's own and the stack answers them. Between the browser and the stack
stands a transparent gateway (this test's) that forwards every request, preflights included, and can
answer a call 503 or 429 itself, as API Gateway does when storage or its throttle fails, so that the
SDKs' retry paths run for real.

What each must do: store every call once (retries included), keep nothing from leaving for a third
party, and judge a batch call by call."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from devstack.local.dynamodb import free_port
from tests.conftest import ROOT
from tests.e2e.browsers import chromium
from tests.e2e.conftest import Stack, eventually
from tests.e2e.gateway import Gateway, running

pytestmark = pytest.mark.e2e

MODULES = ROOT / "devstack" / "node_modules"
# Each SDK's browser bundle, as a site serves it from its own origin.
BUNDLES = {
    "analytics-next": MODULES / "@segment" / "analytics-next" / "dist" / "umd",
    "customerio": MODULES / "@customerio" / "cdp-analytics-browser" / "dist" / "umd",
    "rudderstack": MODULES / "@rudderstack" / "analytics-js" / "dist" / "npm" / "modern" / "bundled" / "umd",
}
WRITE_KEY = "wk_browser_sdks_01"
PLUGIN = "browser-sdks"


def serve_site(port: int) -> ThreadingHTTPServer:
    """The site: a page per SDK at ``/<sdk>/``, the SDK's bundle beside it (same origin as the page)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            bundle = BUNDLES.get(parts[0])
            if bundle is None:
                self.send_error(404)
                return
            if len(parts) > 1 and parts[-1]:
                found = bundle / Path(parts[-1]).name
                if not found.is_file():
                    self.send_error(404)
                    return
                data, kind = found.read_bytes(), "text/javascript"
            else:
                page = f'<!doctype html><title>Shop</title><script src="/{parts[0]}/index.js"></script>Shop'
                data, kind = page.encode(), "text/html"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class Browser:
    gateway: Gateway
    origin: str  # the site's
    chromium: Any
    requested: list[str] = field(default_factory=list)  # every URL any page asked for

    def visit(self, sdk: str, script: str, **arguments: Any) -> Page:
        """Open the SDK's page in a fresh profile and run ``script`` (async, given ``api`` and the
        arguments) in it; the page stays open so that keepalive and beacon requests can leave."""
        context = self.chromium.new_context()
        page = context.new_page()
        page.on("request", lambda request: self.requested.append(request.url))
        page.goto(f"{self.origin}/{sdk}/")
        page.evaluate(script, {"api": self.gateway.url, "writeKey": WRITE_KEY, **arguments})
        return page

    def third_parties(self) -> set[str]:
        mine = {urlsplit(self.origin).netloc, urlsplit(self.gateway.url).netloc}
        return {urlsplit(url).netloc for url in self.requested} - mine


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    missing = [name for name, path in BUNDLES.items() if not (path / "index.js").is_file()]
    if missing:
        pytest.fail(f"SDK bundles missing ({', '.join(missing)}): run `make deps`")
    port = free_port()
    site = serve_site(port)
    origin = f"http://localhost:{port}"  # another origin than the API's: every call is cross-origin
    config = {"tracking": {"events": []}, "write_keys": [WRITE_KEY], "allowed_origins": [origin]}
    assert stack.admin("PUT", f"/v1/plugins/{PLUGIN}/config", config).status == 200
    try:
        with running(Gateway(stack)) as gateway, chromium("the browser SDK test") as launched:
            yield Browser(gateway, origin, launched)
    finally:
        site.shutdown()


def stored_of(stack: Stack, user: str) -> list[dict[str, Any]]:
    """The plugin's stored events of one person (by user id or anonymous id)."""
    return [
        event
        for event in stack.stored()
        if event["plugin_id"] == PLUGIN and user in (event["user_id"], event.get("anonymous_id"))
    ]


# analytics.js and Customer.io's fork of it: settings given inline (no CDN), the API as the host of
# their Segment.io (Customer.io: its Data Pipelines) destination, in the settings and in the load
# options (where analytics.js's own metrics take their host from; without it they go to Segment's).
# Metrics flush every 0.5 s here instead of 30 s, so that the test sees where they go.
ANALYTICS_NEXT_LOAD = """
async ({api, writeKey, destination, strategy, calls}) => {
  const apiHost = api.replace('http://', '') + '/v1'
  const settings = {apiKey: writeKey, apiHost, protocol: 'http'}
  if (strategy) settings.deliveryStrategy = strategy
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {writeKey, cdnSettings: {integrations: {[destination]: settings}, metrics: {flushTimer: 500}}},
    {integrations: {[destination]: {apiHost, protocol: 'http'}}},
  )
  window.sdk = analytics
  for (const [method, ...args] of calls) { await analytics[method](...args) }
  return analytics.user().anonymousId()
}
"""
# RudderStack's v3 SDK: its source config given inline (no call to RudderStack's control plane), the
# API as the data plane; retries quickly for the test.
RUDDERSTACK_LOAD = """
async ({api, writeKey, beacon, calls}) => {
  const rudder = new rudderanalytics.RudderAnalytics()
  const source = {id: 'src', name: 'shop', writeKey, enabled: true, workspaceId: 'ws', config: {},
                  destinations: []}
  rudder.load(writeKey, api, {
    getSourceConfig: () => ({source}),
    useBeacon: beacon,
    beaconQueueOptions: {flushQueueInterval: 500},
    queueOptions: {minRetryDelay: 300, maxRetryDelay: 2000},
  })
  await new Promise(resolve => rudder.ready(resolve))
  for (const [method, ...args] of calls) { rudder[method](...args) }
  return rudder.getAnonymousId()
}
"""
VISIT = [
    ["page", "Shop", "Board games"],
    ["track", "Product Added", {"product_id": "G-32", "price": 18.99, "currency": "USD"}],
    ["identify", "{user}", {"plan": "premium", "email": "{user}@example.com"}],
]


def visit_calls(user: str) -> list[list[Any]]:
    return json.loads(json.dumps(VISIT).replace("{user}", user))


@pytest.mark.parametrize(
    ("sdk", "destination"),
    [("analytics-next", "Segment.io"), ("customerio", "Customer.io Data Pipelines"), ("rudderstack", None)],
)
def test_a_browser_sdk_stores_every_call_once_cross_origin(
    stack: Stack, browser: Browser, sdk: str, destination: str | None
) -> None:
    # Given a visitor who views a page, adds a product and signs in
    user = f"user-{sdk}"
    calls = visit_calls(user)
    # When the SDK sends it from the site's origin to the API's
    if sdk == "rudderstack":
        page = browser.visit(sdk, RUDDERSTACK_LOAD, beacon=False, calls=calls)
    else:
        page = browser.visit(sdk, ANALYTICS_NEXT_LOAD, destination=destination, strategy=None, calls=calls)
    anonymous = page.evaluate("() => window.sdk ? window.sdk.user().anonymousId() : null")
    # Then each call is stored once, with the identity the SDK gave it
    found = eventually(lambda: (events := stored_of(stack, user)) and len(events) == 1 and events)
    assert found, f"nothing stored for {user}"
    assert found[0]["kind"] == "identify"
    anonymous = anonymous or found[0]["anonymous_id"]
    events = eventually(lambda: (events := stored_of(stack, anonymous)) and len(events) == 3 and events)
    assert events, stored_of(stack, anonymous)
    assert sorted(e["kind"] for e in events) == ["identify", "page", "track"]
    assert {e["key"] for e in events} == {"page", "Product Added", "identify"}
    assert {e["anonymous_id"] for e in events} == {anonymous}
    # And nothing left for a third party (the page's origin and the API only)
    assert browser.third_parties() == set()
    # And the browser's own preflights reached the stack and were answered there
    if sdk != "customerio":  # it sends text/plain and nothing else: no preflight
        assert any(s.status == 204 for s in browser.gateway.preflights())
    page.context.close()


def test_analytics_js_retries_a_503_and_a_429_and_counts_each_call_once(
    stack: Stack, browser: Browser
) -> None:
    # Given the API answers the next track 503 and the next page 429, as API Gateway would
    since = len(browser.gateway.seen)
    browser.gateway.fail("/v1/t", 503)
    browser.gateway.fail("/v1/p", 429)
    # When analytics.js sends them
    calls = [["track", "Retried Track", {"n": 1}], ["page", "Retried Page"]]
    page = browser.visit(
        "analytics-next", ANALYTICS_NEXT_LOAD, destination="Segment.io", strategy=None, calls=calls
    )
    anonymous = page.evaluate("() => window.sdk.user().anonymousId()")
    # Then each lands once: the retry, with its X-Retry-Count header, got through CORS
    events = eventually(
        lambda: (found := stored_of(stack, anonymous)) and len(found) == 2 and found, timeout_s=30
    )
    assert sorted(e["kind"] for e in events) == ["page", "track"]
    sent = browser.gateway.posts("/v1/t", since) + browser.gateway.posts("/v1/p", since)
    assert {s.headers.get("x-retry-count") for s in sent if s.status == 200} == {"1"}
    assert sorted(s.status for s in sent if s.status != 200) == [429, 503]
    page.wait_for_timeout(1_000)
    assert len(stored_of(stack, anonymous)) == 2  # no late duplicate
    # And analytics.js's own metrics (it reports the failures) went to the API, not to Segment's host
    assert eventually(lambda: browser.gateway.posts("/v1/m", since), timeout_s=10)
    assert browser.third_parties() == set()
    page.context.close()


def test_analytics_js_batches_are_judged_call_by_call(stack: Stack, browser: Browser) -> None:
    # Given analytics.js batching its calls to /v1/b, one with a number no table can hold
    since = len(browser.gateway.seen)
    strategy = {"strategy": "batching", "config": {"size": 3, "timeout": 500}}
    calls = [
        ["track", "Batched One", {"n": 1}],
        ["track", "Batched Huge", {"amount": 1e200}],
        ["track", "Batched Two", {"n": 2}],
    ]
    page = browser.visit(
        "analytics-next", ANALYTICS_NEXT_LOAD, destination="Segment.io", strategy=strategy, calls=calls
    )
    anonymous = page.evaluate("() => window.sdk.user().anonymousId()")
    # Then the two good calls are stored, the third refused alone
    events = eventually(lambda: (found := stored_of(stack, anonymous)) and len(found) == 2 and found)
    assert sorted(e["key"] for e in events) == ["Batched One", "Batched Two"]
    assert browser.gateway.posts("/v1/b", since), "analytics.js did not batch"
    rejections = eventually(
        lambda: [
            r
            for r in stack.admin("GET", f"/v1/plugins/{PLUGIN}/rejections").json["rejections"]
            if "Batched Huge" in r["payload"]
        ]
    )
    assert [d["field"] for d in rejections[0]["details"]] == ["properties.amount"]
    page.context.close()


def test_rudderstack_retries_and_its_beacon_store_each_call_once(stack: Stack, browser: Browser) -> None:
    # Given the API answers RudderStack's next track 503
    since = len(browser.gateway.seen)
    browser.gateway.fail("/v1/track", 503)
    calls = [["track", "Rudder Retried", {"n": 1}], ["page", "Rudder Page"]]
    page = browser.visit("rudderstack", RUDDERSTACK_LOAD, beacon=False, calls=calls)
    # Then the retry (with RudderStack's Rsa-* headers) gets through CORS and counts once
    retried = eventually(
        lambda: [s for s in browser.gateway.posts("/v1/track", since) if s.status == 200], timeout_s=30
    )
    assert retried, browser.gateway.posts("/v1/track", since)
    assert retried[0].headers.get("rsa-retry-attempt") == "1"
    anonymous = base64.b64decode(retried[0].headers["anonymousid"]).decode()
    events = eventually(lambda: (found := stored_of(stack, anonymous)) and len(found) == 2 and found)
    assert sorted(e["kind"] for e in events) == ["page", "track"]
    page.context.close()
    # And with useBeacon, its calls go to /beacon/v1/batch?writeKey=... and are stored too
    calls = [["track", "Beacon One", {"n": 1}], ["track", "Beacon Two", {"n": 2}]]
    page = browser.visit("rudderstack", RUDDERSTACK_LOAD, beacon=True, calls=calls)
    beacons = eventually(lambda: browser.gateway.posts("/beacon/v1/batch"))
    assert "writeKey=" + WRITE_KEY in beacons[0].path
    assert {s.status for s in beacons} == {200}
    keys = eventually(
        lambda: (
            (
                found := {
                    e["key"]
                    for e in stack.stored()
                    if e["plugin_id"] == PLUGIN and e["key"].startswith("Beacon")
                }
            )
            == {"Beacon One", "Beacon Two"}
            and found
        )
    )
    assert keys == {"Beacon One", "Beacon Two"}
    page.context.close()
