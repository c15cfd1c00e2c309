"""What real clients send, captured from the clients themselves: analytics.js (Segment's
analytics-next, in headless Chromium), analytics-node, and the Python libraries of Segment,
Customer.io and RudderStack, each sending the same shopping visit. The bodies are captured where they
leave the client (a route in the browser, a loopback HTTP server for the others), inflated when
gzipped, and replayed through the ingest function by the cost model (``devstack/bench/bill.py``).

Every client is given the same visit: a page view, a product viewed and added to the cart with the
properties of Segment's e-commerce spec, and an identify with a few traits.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.local.template import ROOT

NODE_MODULES = ROOT / "devstack" / "node_modules"
ANALYTICS_NEXT = NODE_MODULES / "@segment" / "analytics-next" / "dist" / "umd"
WRITE_KEY = "wk_bench_source"
SHOP = "https://shop.example.com"
API_HOST = "api.tracking.example/v1"

# Segment's e-commerce spec, "Product Viewed" and "Product Added" (the spec's own example values).
PRODUCT = {
    "product_id": "507f1f77bcf86cd799439011",
    "sku": "G-32",
    "category": "Games",
    "name": "Monopoly: 3rd Edition",
    "brand": "Hasbro",
    "variant": "200 pieces",
    "price": 18.99,
    "quantity": 1,
    "coupon": "MAYDEALS",
    "currency": "usd",
    "position": 3,
    "value": 18.99,
    "url": "https://www.example.com/product/path",
    "image_url": "https://www.example.com/product/path.jpg",
}
TRAITS = {"email": "peter@example.com", "name": "Peter Gibbons", "plan": "premium", "logins": 5}

# One visit in each browser: page, Product Viewed, Product Added, identify.
_BROWSER_VISIT = """
async ({writeKey, apiHost, product, traits}) => {
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {writeKey, cdnSettings: {integrations: {'Segment.io': {apiKey: writeKey, apiHost, protocol: 'https'}}}},
  )
  await analytics.page('Shop', 'Board games')
  await analytics.track('Product Viewed', product)
  await analytics.track('Product Added', {...product, cart_id: 'skdjsidjsdkdj29j'})
  await analytics.identify('user-6183', traits)
}
"""

_NODE_VISIT = textwrap.dedent(
    """
    import { createRequire } from 'node:module'
    const require = createRequire(process.env.DEVSTACK_MODULES + '/')
    const { Analytics } = require('@segment/analytics-node')
    const [host, writeKey, product, traits] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3]),
      JSON.parse(process.argv[4])]
    const analytics = new Analytics({ writeKey, host, flushAt: 4, maxRetries: 0 })
    const ids = { userId: 'user-6183' }
    analytics.page({ ...ids, category: 'Shop', name: 'Board games' })
    analytics.track({ ...ids, event: 'Product Viewed', properties: product })
    const added = { ...product, cart_id: 'skdjsidjsdkdj29j' }
    analytics.track({ ...ids, event: 'Product Added', properties: added })
    analytics.identify({ ...ids, traits })
    await analytics.closeAndFlush({ timeout: 20000 })
    """
)

_PYTHON_VISIT = textwrap.dedent(
    """
    import importlib, json, sys
    library, host, write_key = sys.argv[1:4]
    product, traits = json.loads(sys.argv[4]), json.loads(sys.argv[5])
    module = importlib.import_module(f"{library}.analytics")
    client = module.Client(write_key, host=host, gzip=True, max_retries=0, upload_size=4)
    client.page("user-6183", category="Shop", name="Board games")
    client.track("user-6183", "Product Viewed", product)
    client.track("user-6183", "Product Added", {**product, "cart_id": "skdjsidjsdkdj29j"})
    client.identify("user-6183", traits)
    client.flush()
    client.join()
    """
)


def inflate(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


@contextmanager
def _capture_server() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A loopback HTTP server that answers every POST like the service and keeps its body."""
    captured: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            captured.append((self.path, inflate(body, self.headers.get("Content-Encoding"))))
            reply = b'{"success":true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", captured
    finally:
        server.shutdown()
        server.server_close()


def _calls(captured: list[tuple[str, bytes]]) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) of each call: a batch's calls one by one, as the service reads them."""
    calls = []
    for path, body in captured:
        decoded = json.loads(body)
        for call in decoded.get("batch", [decoded]):
            calls.append((path, call))
    return calls


def _run_visit(command: list[str], env: dict[str, str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Run a client's visit (``command`` + the capture URL, write key, product and traits)."""
    with _capture_server() as (url, captured):
        arguments = [url, WRITE_KEY, json.dumps(PRODUCT), json.dumps(TRAITS)]
        subprocess.run([*command, *arguments], check=True, capture_output=True, timeout=60, env=env)
    return _calls(captured)


def python_library(library: str) -> list[tuple[str, dict[str, Any]]]:
    """The visit through a Python library (segment, customerio or rudderstack), gzip on."""
    return _run_visit([sys.executable, "-c", _PYTHON_VISIT, library])


def analytics_node() -> list[tuple[str, dict[str, Any]]]:
    node = shutil.which("node")
    if node is None:
        return []
    environment = {**os.environ, "DEVSTACK_MODULES": str(NODE_MODULES)}
    return _run_visit([node, "--input-type=module", "-e", _NODE_VISIT], env=environment)


def analytics_js() -> list[tuple[str, dict[str, Any]]]:
    """The visit through analytics.js in headless Chromium (empty without Chromium)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not ANALYTICS_NEXT.is_dir():
        return []
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    captured: list[tuple[str, bytes]] = []
    page_html = (
        "<!doctype html><html lang=en><head><title>Monopoly: 3rd Edition | Board games | Example Shop</title>"
        '<script src="/analytics-next/index.js"></script></head><body>Shop</body></html>'
    )

    def route(route: Any, request: Any) -> None:
        url: str = request.url
        if url.startswith(f"https://{API_HOST}/"):
            path = url.removeprefix(f"https://{API_HOST.split('/', maxsplit=1)[0]}")
            captured.append((path, request.post_data_buffer or b""))
            route.fulfill(status=200, content_type="application/json", body='{"success":true}')
        elif "/analytics-next/" in url:
            name = url.rsplit("/", 1)[-1].split("?", maxsplit=1)[0]
            route.fulfill(
                status=200, content_type="text/javascript", body=(ANALYTICS_NEXT / name).read_bytes()
            )
        elif url.startswith(SHOP):
            route.fulfill(status=200, content_type="text/html", body=page_html)
        else:
            route.abort()  # nothing leaves the machine

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(locale="en-US", timezone_id="Europe/Paris")
            page.route("**/*", route)
            page.goto(
                f"{SHOP}/products/monopoly-3rd-edition?utm_source=newsletter&utm_medium=email&utm_campaign=may",
                referer="https://www.google.com/",
            )
            page.evaluate(
                _BROWSER_VISIT,
                {"writeKey": WRITE_KEY, "apiHost": API_HOST, "product": PRODUCT, "traits": TRAITS},
            )
            page.wait_for_timeout(500)  # keepalive requests are sent after the promises resolve
        finally:
            browser.close()
    return _calls(captured)


def captured_calls() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Each client's calls of the visit; a client that cannot run here is left out."""
    clients: dict[str, Callable[[], list[tuple[str, dict[str, Any]]]]] = {
        "analytics.js": analytics_js,
        "analytics-node": analytics_node,
        "analytics-python": partial(python_library, "segment"),
        "customerio-python": partial(python_library, "customerio"),
        "rudderstack-python": partial(python_library, "rudderstack"),
    }
    return {name: calls for name, capture in clients.items() if (calls := capture())}


if __name__ == "__main__":
    for client, calls in captured_calls().items():
        for path, body in calls:
            print(client, path, len(json.dumps(body, separators=(",", ":")).encode()), body.get("type"))
