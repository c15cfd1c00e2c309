"""A bounded load run on loopback against a running local stack: many clients, the three dialects,
many users each on its own address; then every aggregate is compared with what was sent.

Used by ``make bench`` (20,000 events over 16 clients) and by a smaller end-to-end test."""

from __future__ import annotations

import base64
import http.client
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devstack.local import dynamodb
from devstack.local.stack import Stack
from tracking.keys import is_aggregates_pk

PLUGIN = "load-plugin"
CHATBOT = "load-bot"
WRITE_KEY = "wk_load_source_1"
CONFIG = {
    "tracking": {
        "events": [
            {"key": "emoji", "name": {"en": "Emoji"}, "aggregations": ["group_array", "increment"]},
            {"key": "handouts", "name": {"en": "Handouts"}, "aggregations": ["array", "increment"]},
            {
                "key": "rating",
                "name": {"en": "Rating"},
                "aggregations": ["average", "increment"],
                "value_type": "number",
            },
        ]
    },
    "write_keys": [WRITE_KEY],
}
WIDGET_STEPS = ["visitor", "bot_open", "convo_started", "message_sent", "message_sent", "added_to_cart"]


@dataclass(frozen=True)
class Call:
    path: str
    body: dict[str, Any]
    source: str
    headers: dict[str, str] = field(default_factory=dict)
    expected: tuple[tuple[str, str, str], ...] = ()  # (plugin, key, user) of each event it carries


def plan(events: int, seed: int = 11) -> list[Call]:
    """About ``events`` events: a third widget calls, a third plugin batches, a third Segment batches."""
    rng = random.Random(seed)  # noqa: S311 - a workload, not a secret
    auth = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}
    calls: list[Call] = []
    user = 0
    while sum(len(c.expected) for c in calls) < events:
        user += 1
        address = f"127.{10 + user // 65536}.{user // 256 % 256}.{user % 256}"
        kind = user % 3
        if kind == 0:
            token = f"load_visitor_{user:07d}{user % 2}"
            for step in WIDGET_STEPS:
                body = {"event": step, "token": token, "ab_test": True, "data": {"chatbot_id": CHATBOT}}
                calls.append(Call("/api/analytics/track", body, address, expected=((CHATBOT, step, token),)))
        elif kind == 1:
            participant = f"participant-{user:07d}"
            batch = []
            for _ in range(10):
                key = rng.choice(["emoji", "handouts", "rating"])
                value: Any = {
                    "emoji": rng.choice(["😍", "👏"]),
                    "handouts": "slides.pdf",
                    "rating": rng.randint(1, 5),
                }[key]
                batch.append({"key": key, "value": value})
            expected = tuple((PLUGIN, e["key"], participant) for e in batch)
            calls.append(
                Call(
                    f"/v1/plugins/{PLUGIN}/track",
                    {"user_id": participant, "events": batch},
                    address,
                    expected=expected,
                )
            )
        else:
            shopper = f"shopper-{user:07d}"
            segment = [
                {
                    "type": "track",
                    "event": rng.choice(["Product Viewed", "Signed Up", "emoji"]),
                    "userId": shopper,
                    "messageId": f"ld-{user}-{n}",
                    "properties": {"value": "😍"},
                }
                for n in range(10)
            ]
            expected = tuple((PLUGIN, e["event"], shopper) for e in segment)
            calls.append(Call("/v1/batch", {"batch": segment}, address, auth, expected))
    rng.shuffle(calls)
    return calls


@dataclass
class Result:
    events: int
    requests: int
    clients: int
    seconds: float
    latencies_ms: list[float]
    failures: list[str]
    drain_seconds: float
    mismatches: list[str]
    connection_errors: list[str]

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "events": self.events,
            "requests": self.requests,
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "events_per_s": round(self.events / self.seconds, 1),
            "requests_per_s": round(self.requests / self.seconds, 1),
            "latency_p50_ms": round(statistics.median(ordered), 2),
            "latency_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 2),
            "failed_requests": len(self.failures),
            "connection_errors": len(self.connection_errors),
            "aggregation_drain_seconds": round(self.drain_seconds, 2),
            "aggregate_mismatches": len(self.mismatches),
        }


def aggregate_counts(database: dynamodb.Database) -> Counter[tuple[str, str, str]]:
    """The ``count`` of every (plugin, key, user) aggregate stored."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for page in database.client().get_paginator("scan").paginate(TableName="AggregatesTable"):
        for item in page["Items"]:
            if is_aggregates_pk(item["pk"]["S"]) and "kind" not in item:  # not a profile or its part
                counts[(item["plugin_id"]["S"], item["key"]["S"], item["user_id"]["S"])] = int(
                    item["count"]["N"]
                )
    return counts


def run(
    stack: Stack,
    events: int,
    clients: int,
    drain_timeout_s: float = 300,
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    assert stack.admin("PUT", f"/v1/plugins/{PLUGIN}/config", CONFIG).status == 200
    calls = plan(events)
    expected = Counter(key for call in calls for key in call.expected)
    latencies: list[float] = []
    failures: list[str] = []
    connection_errors: list[str] = []
    lock = threading.Lock()
    queue = list(reversed(calls))

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                call = queue.pop()
            sent = time.perf_counter()
            try:
                status = stack.request(
                    "POST", call.path, call.body, headers=call.headers, source_ip=call.source
                ).status
            except (OSError, http.client.HTTPException) as exc:
                # A reset or a refused connection: the worker goes on with the next call (a call whose
                # fate is unknown is not sent again: it could count twice).
                with lock:
                    connection_errors.append(f"{call.path}: {exc!r}")
                continue
            with lock:
                latencies.append((time.perf_counter() - sent) * 1000)
                if status != 200:
                    failures.append(f"{call.path} -> {status}")
                if progress:
                    progress(len(latencies), len(calls))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started

    database = stack.database()
    drain_started = time.perf_counter()
    deadline = drain_started + drain_timeout_s
    while True:
        stored = aggregate_counts(database)
        if all(stored.get(key) == n for key, n in expected.items()) or time.perf_counter() > deadline:
            break
        time.sleep(0.5)
    drain = time.perf_counter() - drain_started
    mismatches = [
        f"{key}: sent {n}, aggregated {stored.get(key)}"
        for key, n in expected.items()
        if stored.get(key) != n
    ]
    mismatches += [
        f"{key}: aggregated {n}, never sent"
        for key, n in stored.items()
        if key[0] in (PLUGIN, CHATBOT) and key not in expected
    ]
    return Result(
        sum(expected.values()),
        len(calls),
        clients,
        seconds,
        latencies,
        failures,
        drain,
        mismatches,
        connection_errors,
    )
