"""``make demo``: a realistic mix of traffic sent through the HTTP API of a running local stack, so
a newcomer's first dashboard is full: a webinar plugin (emoji reactions, handouts, ratings), a shop
chatbot (visitors, conversations, carts and purchases in several currencies, A/B groups) and a
Segment-spec source."""

from __future__ import annotations

import base64
import http.client
import json
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

PLUGIN = "webinar-reactions"
CHATBOT = "demo-shop-bot"
WRITE_KEY = "wk_demo_shop_live"
PLUGIN_CONFIG = {
    "tracking": {
        "events": [
            {
                "key": "emoji-reactions",
                "name": {"en": "Emoji reactions", "fr": "Réactions emoji"},
                "aggregations": ["group_array", "increment"],
                "value_type": "string",
            },
            {
                "key": "handouts",
                "name": {"en": "Handouts downloads", "fr": "Nombre de téléchargements"},
                "aggregations": ["group_array", "array", "increment"],
                "value_type": "string",
            },
            {
                "key": "poll-rating",
                "name": {"en": "Session rating", "fr": "Note de la session"},
                "aggregations": ["average", "array"],
                "value_type": "number",
            },
            {
                "key": "attendee-name",
                "name": {"en": "Name", "fr": "Nom"},
                "aggregations": ["string"],
                "value_type": "string",
            },
            {
                "key": "attended-live",
                "name": {"en": "Attended live", "fr": "Présent en direct"},
                "aggregations": ["string"],
                "value_type": "boolean",
            },
            {
                "key": "profile",
                "name": {"en": "Profile", "fr": "Profil"},
                "aggregations": ["string"],
                "value_type": "url",
            },
        ]
    },
    "write_keys": [WRITE_KEY],
}
CHATBOT_CONFIG = {
    "tracking": {
        "events": [
            {"key": "visitor", "name": {"en": "Visits", "fr": "Visites"}, "aggregations": ["increment"]},
            {
                "key": "message_sent",
                "name": {"en": "Messages", "fr": "Messages"},
                "aggregations": ["increment"],
            },
            {
                "key": "added_to_cart",
                "name": {"en": "Cart adds", "fr": "Ajouts au panier"},
                "aggregations": ["increment"],
            },
            {"key": "purchase", "name": {"en": "Purchases", "fr": "Achats"}, "aggregations": ["increment"]},
        ]
    },
    "default_currency": "EUR",
}
EMOJI = ["😍", "😂", "👏", "🎉", "🤔", "😱"]
HANDOUTS = ["slides.pdf", "checklist.pdf", "recording.mp4", "workbook.xlsx"]
NAMES = [
    "Amélie",
    "Bruno",
    "Chen",
    "Dalia",
    "Emeka",
    "Farah",
    "Giulia",
    "Hiro",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
]
PRODUCTS = [("SKU-LAMP", 49.99), ("SKU-MUG", 12.5), ("SKU-CHAIR", 189.0), ("SKU-PLANT", 24.9)]
CURRENCIES = ["EUR", "EUR", "USD", "GBP", "CHF", "SEK"]


@dataclass
class Client:
    url: str
    admin_key: str
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    _own_addresses: bool = True

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        source: str = "127.0.0.1",
    ) -> int:
        """One call; each simulated visitor has its own loopback address, as it would its own IP."""
        host, port = self.url.removeprefix("http://").split(":")
        while True:
            address = (source if self._own_addresses else "127.0.0.1", 0)
            connection = http.client.HTTPConnection(host, int(port), timeout=30, source_address=address)
            try:
                data = json.dumps(body).encode() if body is not None else None
                connection.request(
                    method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
                )
                response = connection.getresponse()
                response.read()
            except OSError:
                if not self._own_addresses:
                    raise
                self._own_addresses = False  # this system has only 127.0.0.1: share it, and pace
                continue
            finally:
                connection.close()
            if response.status == 429:
                time.sleep(int(response.getheader("Retry-After") or "1"))
                continue
            self.sent += 1
            if response.status >= 400:
                self.failed.append(f"{method} {path} -> {response.status}")
            return response.status

    def admin(self, method: str, path: str, body: Any = None) -> int:
        return self.request(method, path, body, {"x-api-key": self.admin_key})


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any
    source: str  # the simulated client's own (loopback) address
    headers: dict[str, str] = field(default_factory=dict)


def plan(rng: random.Random) -> list[Call]:
    """Every call of the demo, in the order sent."""
    calls: list[Call] = []
    for n in range(60):
        user = f"participant-{n:03d}"
        events: list[dict[str, Any]] = [{"key": "attendee-name", "value": NAMES[n % len(NAMES)]}]
        events += [{"key": "emoji-reactions", "value": rng.choice(EMOJI)} for _ in range(rng.randint(0, 12))]
        events += [{"key": "handouts", "value": rng.choice(HANDOUTS)} for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.7:
            events.append({"key": "poll-rating", "value": rng.randint(2, 5)})
        events.append({"key": "attended-live", "value": rng.random() < 0.8})
        events.append({"key": "profile", "value": f"https://example.com/people/{user}"})
        body = {"user_id": user, "events": events}
        calls.append(Call("POST", f"/v1/plugins/{PLUGIN}/track", body, f"127.0.2.{n % 250 + 1}"))
    for n in range(150):
        token = f"demo_visitor_{n:04d}{n % 2}"  # the last character picks the A/B group
        ip = f"127.0.{3 + n // 250}.{n % 250 + 1}"
        steps = ["visitor"]
        # Where they came from (the page's utm_source), and which popup they were shown.
        source = rng.choice(["newsletter", "ads", "search", None])
        page = "https://shop.example.com/" + (f"?utm_source={source}" if source else "")
        popup = rng.choice(["spring-a", "spring-b"])
        if rng.random() < (0.5 if n % 2 else 0.4):
            steps += ["popup_displayed", "bot_open"]
            if rng.random() < 0.7:
                steps += ["convo_started"] + ["message_sent"] * rng.randint(1, 4)
                if rng.random() < 0.5:
                    steps += ["added_to_cart"]
                    if rng.random() < (0.55 if n % 2 else 0.4):
                        steps += ["purchase"]
        for step in steps:
            data: dict[str, Any] = {"chatbot_id": CHATBOT, "url": page}
            if step in ("popup_displayed", "bot_open"):
                data["popup_version"] = popup
            if step == "convo_started":
                data["open_way"] = rng.choice(["popup", "chat_button"])
            if step in ("added_to_cart", "purchase"):
                sku, price = rng.choice(PRODUCTS)
                quantity = rng.randint(1, 2)
                data["items"] = [
                    {"item_id": sku, "value": price, "quantity": quantity, "currency": rng.choice(CURRENCIES)}
                ]
            if step == "purchase":
                data["orderNum"] = f"DEMO-{n:04d}"
            calls.append(
                Call(
                    "POST",
                    "/api/analytics/track",
                    {"event": step, "token": token, "ab_test": True, "data": data},
                    ip,
                )
            )
    batch: list[dict[str, Any]] = []
    for n in range(40):
        user = f"shopper-{n:03d}"
        plan_name = rng.choice(["free", "pro"])
        batch.append(
            {"type": "identify", "userId": user, "traits": {"plan": plan_name}, "messageId": f"demo-id-{n}"}
        )
        if rng.random() < 0.4:
            sku, price = rng.choice(PRODUCTS)
            products = [{"product_id": sku, "price": price, "quantity": 1}]
            properties = {"order_id": f"SEG-{n:04d}", "currency": "USD", "products": products}
            batch.append(
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": user,
                    "messageId": f"demo-order-{n}",
                    "properties": properties,
                }
            )
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    calls.append(Call("POST", "/v1/batch", {"batch": batch}, "127.0.9.1", auth))
    for start in range(0, len(history := month_of_pages(rng)), 100):
        calls.append(Call("POST", "/v1/import", {"batch": history[start : start + 100]}, "127.0.9.2", auth))
    return calls


def month_of_pages(rng: random.Random, readers: int = 80, now: float | None = None) -> list[dict[str, Any]]:
    """The last 30 days of the webinar site's page views, imported with their own timestamps (so the
    lake's breakdown and retention show a shape, not one day): each reader comes first on some day,
    then comes back on later days, less and less often."""
    today = int((now if now is not None else time.time()) // 86_400) * 86_400
    pages: list[dict[str, Any]] = []
    for n in range(readers):
        first = rng.randint(0, 29)
        source = rng.choice(["newsletter", "ads", "search"])
        for day in range(first, -1, -1):
            if day != first and rng.random() > 0.35 * 0.9 ** (first - day):
                continue
            at = today - day * 86_400 + rng.randint(8 * 3600, 20 * 3600)
            pages.append(
                {
                    "type": "page",
                    "name": "Replay",
                    "userId": f"reader-{n:03d}",
                    "messageId": f"demo-page-{n}-{day}",
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(at, time.time() - 60))),
                    "properties": {"url": f"https://webinar.example.com/replay?utm_source={source}"},
                }
            )
    return pages


def progress(done: int, total: int, width: int = 40) -> None:
    """A bar redrawn in place on a terminal; a line per tenth elsewhere (CI logs, pipes)."""
    tty = sys.stderr.isatty()
    if not tty and done != total and done % max(1, total // 10):
        return
    filled = width * done // total
    bar = f"[{'#' * filled}{'.' * (width - filled)}] {100 * done // total:3d}% ({done}/{total} calls)"
    sys.stderr.write(f"\r{bar}" if tty else f"{bar}\n")
    sys.stderr.flush()


def run(url: str, admin_key: str, seed: int = 7) -> Client:
    client = Client(url, admin_key)
    for plugin, config in ((PLUGIN, PLUGIN_CONFIG), (CHATBOT, CHATBOT_CONFIG)):
        status = client.admin("PUT", f"/v1/plugins/{plugin}/config", config)
        if status != 200:
            raise SystemExit(f"publishing the {plugin} config failed: HTTP {status}")
    calls = plan(random.Random(seed))  # noqa: S311 - a repeatable demo, not a secret
    for done, call in enumerate(calls, start=1):
        client.request(call.method, call.path, call.body, call.headers, source=call.source)
        progress(done, len(calls))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    return client
