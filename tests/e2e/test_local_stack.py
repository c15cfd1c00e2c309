"""`make run`'s stack over HTTP, on DynamoDB Local: the issue's "done when", as a user would check it."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.local.dynamodb import free_port
from tests.conftest import ROOT
from tests.e2e.conftest import Stack, eventually, start_stack, stop_stack

pytestmark = pytest.mark.e2e

CONFIG = {
    "tracking": {
        "events": [
            {
                "name": {"en": "Emoji reactions"},
                "key": "emoji-reactions",
                "aggregations": ["group_array"],
                "value_type": "string",
            },
            {
                "name": {"en": "Handouts"},
                "key": "handouts",
                "aggregations": ["array", "increment"],
                "value_type": "string",
            },
        ]
    },
    "allowed_origins": ["https://app.example.com"],
    "write_keys": ["wk_e2e_live_1"],
}
SEGMENT = {"Authorization": "Basic " + base64.b64encode(b"wk_e2e_live_1:").decode()}


@pytest.fixture(scope="module")
def published(stack: Stack) -> None:
    assert stack.admin("PUT", "/v1/plugins/e2e-plugin/config", CONFIG).status == 200


def test_health(stack: Stack) -> None:
    reply = stack.request("GET", "/health")
    assert (reply.status, reply.json) == (200, {"status": "ok"})


def test_widget_purchase_plugin_track_and_segment_batch_are_stored(stack: Stack, published: None) -> None:
    purchase = {
        "event": "purchase",
        "token": "user_e2e_buyer_0",
        "data": {
            "chatbot_id": "e2e-bot",
            "orderNum": "E2E-1",
            "items": [{"item_id": "SKU-1", "value": 49.99, "quantity": 2, "currency": "USD"}],
        },
        "ab_test": True,
    }
    track = {"key": "emoji-reactions", "value": "😍", "user_id": "participant-42"}
    batch = {
        "batch": [
            {
                "type": "track",
                "event": "handouts",
                "userId": "seg-user",
                "properties": {"value": "slides.pdf"},
                "messageId": "e2e-m1",
            },
            {"type": "identify", "userId": "seg-user", "traits": {"plan": "pro"}, "messageId": "e2e-m2"},
        ]
    }
    replies = [
        stack.request("POST", "/api/analytics/track", purchase, headers={"Origin": "https://shop.example"}),
        stack.request(
            "POST", "/v1/plugins/e2e-plugin/track", track, headers={"Origin": "https://app.example.com"}
        ),
        stack.request("POST", "/v1/batch", batch, headers=SEGMENT),
    ]
    assert [(r.status, r.json) for r in replies] == [
        (200, {"success": True}),
        (200, {"success": True}),
        (200, {"success": True, "accepted": 2, "rejected": []}),
    ]
    stored = {(e["plugin_id"], e["user_id"], e["key"]): e for e in stack.stored()}
    assert stored[("e2e-bot", "user_e2e_buyer_0", "purchase")]["total_value_base"] == "91.98"
    assert stored[("e2e-bot", "user_e2e_buyer_0", "purchase")]["ab_group"] == "control"
    assert stored[("e2e-plugin", "participant-42", "emoji-reactions")]["value"] == "😍"
    assert stored[("e2e-plugin", "seg-user", "handouts")]["value"] == "slides.pdf"
    assert stored[("e2e-plugin", "seg-user", "identify")]["kind"] == "identify"


def test_the_stream_pollers_take_a_fresh_shards_first_records_without_an_error(
    stack: Stack, published: None
) -> None:
    """A poller keeps each shard's iterator between polls; DynamoDB Local answers TrimmedDataAccess to
    one taken while the shard was empty once its first records come. It is taken again, quietly: a
    user of ``make run`` sees no traceback, and the call shows in the live view."""
    track = {"key": "emoji-reactions", "value": "🎉", "user_id": "participant-fresh"}
    assert stack.request("POST", "/v1/plugins/e2e-plugin/track", track).status == 200

    def shown() -> bool:
        reply = stack.admin("GET", "/v1/plugins/e2e-plugin/events/recent")
        return any(event["user_id"] == "participant-fresh" for event in reply.json["events"])

    assert eventually(shown, timeout_s=10)
    log = stack.log.read_text(errors="replace")
    assert "stream poll failed" not in log
    assert "Traceback" not in log


def test_repeated_message_id_and_order_number_leave_one_event_each(stack: Stack, published: None) -> None:
    call = {"event": "Signed Up", "userId": "dup-user", "messageId": "e2e-dup-1"}
    purchase = {
        "event": "purchase",
        "token": "user_e2e_dup_01",
        "data": {"chatbot_id": "e2e-dup-bot", "orderNum": "DUP-1"},
    }
    for _ in range(3):
        assert stack.request("POST", "/v1/track", call, headers=SEGMENT).status == 200
        assert stack.request("POST", "/api/analytics/track", purchase).status == 200
    stored = stack.stored()
    assert [e["event_id"] for e in stored if e["user_id"] == "dup-user"] == ["m:e2e-dup-1"]
    assert [e["event_id"] for e in stored if e["plugin_id"] == "e2e-dup-bot"] == ["o:DUP-1"]


def test_the_121st_widget_call_from_one_ip_within_a_minute_gets_429(stack: Stack) -> None:
    visitor = {"event": "visitor", "token": "user_e2e_rate_01", "data": {"chatbot_id": "e2e-rate-bot"}}
    codes = [
        stack.request("POST", "/api/analytics/track", visitor, source_ip="127.0.0.77").status
        for _ in range(121)
    ]
    assert codes[:120] == [200] * 120
    assert codes[120] == 429
    limited = stack.request("POST", "/api/analytics/track", visitor, source_ip="127.0.0.77")
    assert limited.json["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another client is not affected.
    assert stack.request("POST", "/api/analytics/track", visitor, source_ip="127.0.0.78").status == 200


def test_a_50001_byte_body_gets_analytics_002(stack: Stack) -> None:
    reply = stack.request("POST", "/api/analytics/track", raw=b"[" * 50_001)
    assert (reply.status, reply.json["error"]["code"]) == (400, "ANALYTICS_002")


def test_errors_have_the_contract_shape(stack: Stack, published: None) -> None:
    bad = stack.request("POST", "/api/analytics/track", {"event": "visitor", "token": "x"})
    assert bad.status == 422
    assert bad.json["error"]["details"] == [
        {"field": "token", "message": "token must be 8-128 characters of A-Z, a-z, 0-9, '_' and '-'"}
    ]
    assert (
        stack.request("POST", "/api/analytics/track", raw=b"{oops").json["error"]["code"] == "ANALYTICS_001"
    )
    assert stack.request("GET", "/no/such/route").status == 404
    denied = stack.request(
        "POST",
        "/v1/plugins/e2e-plugin/track",
        {"key": "handouts", "value": "a", "user_id": "u"},
        headers={"Origin": "https://evil.example"},
    )
    assert (denied.status, denied.json["error"]["code"]) == (403, "FORBIDDEN")


def test_cors_preflight(stack: Stack, published: None) -> None:
    headers = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    reply = stack.request("OPTIONS", "/v1/plugins/e2e-plugin/track", headers=headers)
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    widget = stack.request("OPTIONS", "/api/analytics/track", headers=headers)
    assert widget.status == 204


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_data_survives_a_restart_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    first = start_stack(tmp_path, in_memory=False)
    call = {"event": "visitor", "token": "user_e2e_persist", "data": {"chatbot_id": "persist-bot"}}
    assert first.request("POST", "/api/analytics/track", call).status == 200
    state: dict[str, Any] = json.loads((tmp_path / "stack.json").read_text())
    dynamodb_port = int(state["dynamodb"].rsplit(":", 1)[1])
    assert stop_stack(first) == 0
    assert not _answers(first.port)
    assert not _answers(dynamodb_port)
    assert not (tmp_path / "stack.json").exists()

    second = start_stack(tmp_path, in_memory=False)
    try:
        assert [e["user_id"] for e in second.stored()] == ["user_e2e_persist"]
    finally:
        stop_stack(second)


def test_once_healthy_the_state_file_names_this_run_not_a_crashed_one(tmp_path: Path) -> None:
    # A run killed with -9 leaves its stack.json behind, naming a DynamoDB Local that is gone.
    stale = {"url": "http://127.0.0.1:9", "dynamodb": "http://127.0.0.1:9", "database": "dynamodb-local"}
    (tmp_path / "stack.json").write_text(json.dumps(stale))
    stack = start_stack(tmp_path, in_memory=True)  # returns on the first healthy answer
    try:
        state: dict[str, Any] = json.loads((tmp_path / "stack.json").read_text())
        assert state["url"] == stack.url
        assert _answers(int(state["dynamodb"].rsplit(":", 1)[1]))
        assert (tmp_path / "stack.json").stat().st_mode & 0o777 == 0o600
        assert not list(tmp_path.glob(".stack.json.*"))
    finally:
        stop_stack(stack)


def test_without_java_the_stack_falls_back_to_moto_and_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL_DYNAMODB"}
    env["PATH"] = str(Path(sys.executable).parent)  # a PATH with no java on it
    env["LOCAL_LOG_LEVEL"] = "WARNING"
    port = free_port()
    args = [sys.executable, "-m", "devstack.cli", "--state-dir", str(tmp_path), "run", "--port", str(port)]
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    fallback = Stack(port, tmp_path, process, tmp_path / "none.log")
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if fallback.request("GET", "/health").status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        visitor = {"event": "visitor", "token": "user_no_java_01", "data": {"chatbot_id": "moto-bot"}}
        assert fallback.request("POST", "/api/analytics/track", visitor).status == 200
        assert [e["plugin_id"] for e in fallback.stored()] == ["moto-bot"]
    finally:
        assert stop_stack(fallback) == 0
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert "WARNING: Java not found: falling back to moto's DynamoDB server" in stderr
