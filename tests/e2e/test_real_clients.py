"""The Segment-spec libraries people already run, unmodified, pointed at the local stack: Segment's
analytics-python and analytics-node, Customer.io's cdp-analytics and RudderStack's Python SDK, each
with its default settings and (where it can) gzip on. Every call type is stored once with every
identity field, a batch with one bad call stores the others, and the aggregates read back over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.local.stack import Stack, eventually
from tests.conftest import ROOT
from tests.e2e.gateway import Gateway, running

pytestmark = pytest.mark.e2e

CLIENTS = Path(__file__).resolve().parent / "clients"
NODE_MODULES = ROOT / "devstack" / "node_modules"
KINDS = ["alias", "group", "identify", "identify", "page", "screen", "track", "track", "track"]
RUNS = [
    ("segment", "off"),
    ("segment", "on"),
    ("customerio", "off"),
    ("customerio", "on"),
    ("rudderstack", "on"),  # its default
    ("rudderstack", "off"),
    ("node", "off"),  # analytics-node has no compression
]


def publish(stack: Stack, plugin: str, write_key: str) -> None:
    config = {
        "tracking": {
            "events": [
                {"key": "Signed Up", "name": {"en": "Signed up"}, "aggregations": ["array", "increment"]}
            ]
        },
        "write_keys": [write_key],
    }
    assert stack.admin("PUT", f"/v1/plugins/{plugin}/config", config).status == 200


def send(stack: Stack, library: str, gzip: str, write_key: str, prefix: str) -> dict[str, Any]:
    if library == "node":
        if shutil.which("node") is None:
            pytest.fail("node is needed for analytics-node (make deps installs it next to DynamoDB Local)")
        command = ["node", str(CLIENTS / "send_node.mjs"), stack.url, write_key, prefix]
    else:
        command = [
            sys.executable,
            str(CLIENTS / "send_python.py"),
            library,
            stack.url,
            write_key,
            gzip,
            prefix,
        ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "DEVSTACK_MODULES": str(NODE_MODULES)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(("library", "gzip"), RUNS)
def test_a_real_library_stores_every_call_once(stack: Stack, library: str, gzip: str) -> None:
    # Given a plugin whose write key the library is configured with
    plugin, write_key, prefix = f"sdk-{library}-{gzip}", f"wk_{library}_{gzip}_key", f"{library}-{gzip}"
    publish(stack, plugin, write_key)
    # When the library sends every call type, then a batch with two bad calls among nine good ones (an
    # event name too long, an amount of 1e+200)
    result = send(stack, library, gzip, write_key, prefix)
    # Then the library was told of no error (nothing for it to retry or drop)
    assert result["errors"] == []
    events = [e for e in stack.stored() if e["plugin_id"] == plugin]
    by_id = {e["message_id"]: e for e in events}
    calls = [e for e in events if e["key"] != "Batched"]
    assert sorted(e["kind"] for e in calls) == KINDS
    assert sorted(e["message_id"] for e in events if e["key"] == "Batched") == [
        f"{prefix}-b{n}" for n in range(9)
    ]
    assert f"{prefix}-bad" not in by_id
    assert f"{prefix}-huge" not in by_id
    user, anonymous = f"{prefix}-user", f"{prefix}-anon"
    # and every identity field the contract lists was kept
    identify = by_id[f"{prefix}-i1"]
    assert (identify["user_id"], identify["anonymous_id"]) == (user, anonymous)
    assert identify["traits"]["plan"] == "pro"
    alias = by_id[f"{prefix}-a1"]
    assert (alias["previous_id"], alias["user_id"]) == (anonymous, user)
    group = by_id[f"{prefix}-g1"]
    assert (group["group_id"], group["traits"]) == ("acme", {"name": "Acme Inc"})
    page = by_id[f"{prefix}-p1"]
    assert (page["name"], page["category"], page["value"]) == ("Getting started", "Docs", "Getting started")
    screen = by_id[f"{prefix}-s1"]
    assert (screen["name"], screen["category"]) == ("Settings", "App")
    assert by_id[f"{prefix}-t0"]["user_id"] == anonymous
    assert all(
        e["client_times"].get("timestamp") or e["client_times"].get("originalTimestamp") for e in events
    )
    # and the bad calls are listed as rejections of the plugin, each naming its field
    rejections = stack.admin("GET", f"/v1/plugins/{plugin}/rejections").json["rejections"]
    fields = {
        message_id: [d["field"] for d in r["details"]]
        for r in rejections
        for message_id in (f"{prefix}-bad", f"{prefix}-huge")
        if message_id in r["payload"]
    }
    assert fields == {f"{prefix}-bad": ["event"], f"{prefix}-huge": ["properties.amount"]}

    # And the aggregates read back over HTTP once the stream has been applied
    def aggregated() -> Any:
        reply = stack.admin("GET", f"/v1/plugins/{plugin}/users/{user}")
        values = reply.json.get("values", {}) if reply.status == 200 else {}
        return values if values.get("Batched", {}).get("value") == 9 else None

    values = eventually(aggregated, timeout_s=30)
    assert values, "the user's aggregates did not appear"
    # The library's identify and alias linked the anonymous id: its "trial" counts for the user (in
    # event-time order, which the clients' clock skew correction may interleave by a few ms).
    assert sorted(values["Signed Up"]["value"]) == ["paid", "paid", "trial"]
    assert (values["page"]["value"], values["screen"]["value"]) == (1, 1)
    assert stack.admin("GET", f"/v1/plugins/{plugin}/users/{anonymous}").json["merged_into"] == user


@pytest.mark.parametrize("name", ["t", "i", "p", "s", "g", "a", "b", "m"])
def test_analytics_js_short_paths_from_a_browser_origin(stack: Stack, name: str) -> None:
    # Given the demo plugin, which allows the browser's origin and owns the write key analytics.js sends
    config = json.loads(json.loads((ROOT / "events" / "config-put.json").read_text())["body"])
    assert stack.admin("PUT", "/v1/plugins/demo-plugin/config", config).status == 200
    sample = json.loads((ROOT / "events" / f"analyticsjs-{name}.json").read_text())
    origin = {"Origin": "https://app.example.com"}
    # When the browser asks first (a request with Content-Type application/json would be preflighted)
    preflight = stack.request(
        "OPTIONS", f"/v1/{name}", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status == 204
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    # and posts its call as text/plain, the write key in the body, as analytics.js does
    reply = stack.request(
        "POST", f"/v1/{name}", raw=sample["body"].encode(), headers={**origin, "Content-Type": "text/plain"}
    )
    # Then it is answered for that origin, and what it sent is stored
    assert reply.status == 200, reply.raw
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    if name == "m":
        return
    sent = json.loads(sample["body"])
    ids = [c["messageId"] for c in sent.get("batch", [sent])]
    stored = {e["message_id"] for e in stack.stored() if e["plugin_id"] == "demo-plugin"}
    assert set(ids) <= stored


OLD_CLIENTS = ROOT / ".venv-clients" / "bin" / "python"


def send_python14(url: str, write_key: str, prefix: str) -> list[dict[str, Any]]:
    if not OLD_CLIENTS.is_file():
        pytest.fail("analytics-python 1.4 is installed by `make deps` in .venv-clients/")
    done = subprocess.run(
        [str(OLD_CLIENTS), str(CLIENTS / "send_python14.py"), url, write_key, prefix],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    errors: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])["errors"]
    return errors


def test_analytics_python_1_4_reads_the_gateways_own_errors(stack: Stack) -> None:
    # Given an old analytics-python, between it and the stack a gateway that answers as API Gateway
    plugin, write_key = "sdk-python14", "wk_python14_key"
    publish(stack, plugin, write_key)
    with running(Gateway(stack)) as gateway:
        # When the gateway throttles its batch once (the template's THROTTLED response)
        gateway.fail("/v1/batch", 429)
        errors = send_python14(gateway.url, write_key, "throttled")
        # Then the library read the error, retried, and its calls were stored once
        assert errors == []
        assert [s.status for s in gateway.posts("/v1/batch")] == [429, 200]
        stored = sorted(e["message_id"] for e in stack.stored() if e["plugin_id"] == plugin)
        assert stored == [f"throttled-{n}" for n in range(3)]
        # When the gateway refuses a batch as too large (a 400 of its own)
        since = len(gateway.seen)
        gateway.fail("/v1/batch", 400, 400, 400)
        errors = send_python14(gateway.url, write_key, "large")
    # Then the library was told the contract's code, and did not retry what cannot succeed
    # (without a top-level code it raised KeyError, which it retries as a network error)
    assert errors == [{"type": "APIError", "status": 400, "code": "ANALYTICS_002"}]
    assert [s.status for s in gateway.posts("/v1/batch", since)] == [400]
