"""What classifying a call's user agent costs ingest (issue 26): ``bot_check_us_per_call`` for an
agent seen before (the container's cache) and for a new one (Crawler-Detect's patterns and
ua-parser's rules run), and ``agents.first_call_ms``, the first classification in a fresh process,
which imports and compiles both (once per container, on its first call with an agent). Each in
rounds, reported as median and spread."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from devstack.bench.stats import spread
from devstack.local.template import ROOT

# Real agents of each kind, made distinct by their version numbers (a new agent each call).
TEMPLATES = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.{v} Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.{v}; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/{v}.0.0.0 "
    "Safari/537.36",
    "analytics-python/2.{v}.0",
)
PROBE = """
import json, sys, time
sys.path.insert(0, "layers/shared")
from tracking.ingest.agents import agent_of
templates, calls = json.loads(sys.argv[1]), int(sys.argv[2])
started = time.perf_counter(); agent_of(templates[0].format(v=1)); first = time.perf_counter() - started
agents = [templates[n % len(templates)].format(v=100 + n) for n in range(calls)]
started = time.perf_counter()
for agent in agents: agent_of(agent)
uncached = time.perf_counter() - started
started = time.perf_counter()
for _ in range(10):
    for agent in agents: agent_of(agent)
cached = time.perf_counter() - started
print(json.dumps({
    "first_ms": first * 1e3, "uncached_us": uncached / calls * 1e6, "cached_us": cached / (calls * 10) * 1e6
}))
"""


def agent_figures(quick: bool) -> dict[str, Any]:
    rounds, calls = (3, 200) if quick else (7, 1_000)
    samples: list[dict[str, float]] = []
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-c", PROBE, json.dumps(TEMPLATES), str(calls)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "calls": calls,
        "first_call_ms": spread([s["first_ms"] for s in samples], 1),
        "bot_check_us_per_call": {
            "uncached": spread([s["uncached_us"] for s in samples], 1),
            "cached": spread([s["cached_us"] for s in samples], 3),
        },
    }
