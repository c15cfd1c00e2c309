"""Destinations through the functions, on moto (DynamoDB and SQS) and a real HTTP receiver: the admin
routes (a credential never shown, a private address refused), the router queuing stored events from
the change stream, and the delivery sending them signed, retrying, recording failures that a retry
sends again."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from devstack.local.builders import api_event
from tests.conftest import SAMPLE_ADMIN_KEY, sample_event
from tests.integration.conftest import Invoke, body, new_container

SECRET = "whsec_integration-secret-0001"
ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASE = "/v1/plugins/demo-plugin/destinations"


class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    status = 200
    received: list[tuple[bytes, dict[str, str]]] = []  # noqa: RUF012 - shared by its instances

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.received.append((data, dict(self.headers)))
        self.send_response(Receiver.status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received, Receiver.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    server.server_close()


@pytest.fixture
def queue_url(aws: Any, function_env: Any) -> str:
    url = str(boto3.client("sqs").create_queue(QueueName="DeliveryQueue")["QueueUrl"])
    function_env(DELIVERY_QUEUE_URL=url, DESTINATIONS_ALLOW_LOCAL="true")
    return url


def put(query: Invoke, destination_id: str, config: dict[str, Any]) -> dict[str, Any]:
    return query(api_event("PUT", f"{BASE}/{destination_id}", config, headers=ADMIN))


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret": SECRET, **extra}


def test_a_destination_is_saved_listed_and_removed_and_its_secret_never_shown(
    queue_url: str, receiver: str, demo_config: Any
) -> None:
    query = new_container("QueryFunction")
    saved = put(query, "crm", hook(receiver, filter={"types": ["track"]}))
    assert saved["statusCode"] == 200, saved["body"]
    assert SECRET not in saved["body"]
    assert body(saved)["secret"] == "****0001"
    listed = query(api_event("GET", BASE, headers=ADMIN))
    assert SECRET not in listed["body"]
    (shown,) = body(listed)["destinations"]
    assert (shown["destination_id"], shown["delivered"], shown["pending"], shown["last_error"]) == (
        "crm",
        0,
        0,
        None,
    )
    assert query(api_event("DELETE", f"{BASE}/crm", headers=ADMIN))["statusCode"] == 200
    assert query(api_event("DELETE", f"{BASE}/crm", headers=ADMIN))["statusCode"] == 404


@pytest.mark.parametrize(
    ("destination_id", "config", "field"),
    [
        ("crm", {"type": "webhook", "url": "https://169.254.169.254/latest/", "secret": SECRET}, "url"),
        ("crm", {"type": "webhook", "url": "http://10.0.0.8/hook", "secret": SECRET}, "url"),
        ("crm", {"type": "webhook", "url": "https://[::1]/hook", "secret": SECRET}, "url"),
        ("bad id!", {"type": "webhook", "url": "http://127.0.0.1:9/h", "secret": SECRET}, "destination_id"),
        ("crm", {"type": "webhook", "url": "http://127.0.0.1:9/h"}, None),
    ],
)
def test_a_bad_destination_is_a_422_and_nothing_is_saved(
    queue_url: str, destination_id: str, config: dict[str, Any], field: str | None
) -> None:
    query = new_container("QueryFunction")
    answer = put(query, destination_id.replace(" ", "%20"), config)
    assert answer["statusCode"] == 422, answer["body"]
    if field:
        assert field in {d["field"] for d in body(answer)["error"]["details"]}
    assert body(query(api_event("GET", BASE, headers=ADMIN)))["destinations"] == []


def test_the_admin_key_alone_manages_destinations(queue_url: str, receiver: str) -> None:
    query = new_container("QueryFunction")
    assert put(query, "crm", hook(receiver))["statusCode"] == 200
    created = body(query(api_event("POST", "/v1/plugins/demo-plugin/keys", {}, headers=ADMIN)))
    dashboard = {"x-api-key": created["key"]}
    for method, path in (("GET", BASE), ("PUT", f"{BASE}/crm"), ("GET", f"{BASE}/crm/failures")):
        answer = query(
            api_event(method, path, hook(receiver) if method == "PUT" else None, headers=dashboard)
        )
        assert answer["statusCode"] == 403


def received_messages(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        page = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
        if not page.get("Messages"):
            return found
        found.extend(page["Messages"])


def as_sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:DeliveryQueue",
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def test_stored_events_are_routed_delivered_signed_retried_and_failed_then_retried_from_failures(
    queue_url: str, receiver: str, demo_config: Any
) -> None:
    query = new_container("QueryFunction")
    assert (
        put(query, "crm", hook(receiver, filter={"events": ["emoji-reactions", "purchase"]}))["statusCode"]
        == 200
    )
    stream = sample_event("route-kinesis")
    for record in stream["Records"]:  # stored after the destination was enabled
        change = json.loads(base64.b64decode(record["kinesis"]["data"]))
        change["dynamodb"]["NewImage"]["received_at"] = {"N": str(2_000_000_000_000)}
        record["kinesis"]["data"] = base64.b64encode(json.dumps(change).encode()).decode()
    assert new_container("RouteFunction")(stream) == {"batchItemFailures": []}
    messages = received_messages(queue_url)
    events = sorted(json.loads(m["Body"])["message"]["event"] for m in messages)
    # The filter keeps demo-plugin's two reactions, not its handouts; demo-bot's events are another plugin's.
    assert events == ["emoji-reactions", "emoji-reactions"]

    deliver = new_container("DeliverFunction")
    Receiver.status = 503
    answer = deliver(as_sqs_event(messages))
    assert len(answer["batchItemFailures"]) == 2  # to retry, after their backoff
    assert received_messages(queue_url) == []  # hidden for the backoff, not shown again at once

    Receiver.status = 200
    redelivered = [{**m, "Attributes": {**m["Attributes"], "ApproximateReceiveCount": "2"}} for m in messages]
    assert deliver(as_sqs_event(redelivered)) == {"batchItemFailures": []}
    sent = Receiver.received[-2:]
    for data, headers in sent:
        expected = hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
        assert headers["X-Signature"] == f"sha256={expected}"
        assert headers["Idempotency-Key"] == json.loads(data)["messageId"]
    assert deliver(as_sqs_event(redelivered)) == {"batchItemFailures": []}  # a duplicate: not sent again
    assert len(Receiver.received) == 4
    shown = body(query(api_event("GET", f"{BASE}/crm", headers=ADMIN)))
    assert (shown["delivered"], shown["failed"], shown["pending"]) == (2, 0, 0)
    assert shown["last_delivered_at"] is not None

    Receiver.status = 410  # gone: not retried, a failure
    failing = json.loads(messages[0]["Body"])
    failing["message"]["messageId"] = "never-delivered-1"
    lone = {**messages[0], "MessageId": "m-410", "Body": json.dumps(failing)}
    assert deliver(as_sqs_event([lone])) == {"batchItemFailures": []}
    failures = body(query(api_event("GET", f"{BASE}/crm/failures", headers=ADMIN)))
    (failure,) = failures["failures"]
    assert (failure["messageId"], failure["last_status"], failure["attempts"]) == (
        "never-delivered-1",
        410,
        1,
    )
    retried = query(api_event("POST", f"{BASE}/crm/failures/retry", headers=ADMIN))
    assert (retried["statusCode"], body(retried)) == (202, {"retried": 1, "remaining": False})
    assert body(query(api_event("GET", f"{BASE}/crm/failures", headers=ADMIN)))["failures"] == []
    Receiver.status = 200
    assert deliver(as_sqs_event(received_messages(queue_url))) == {"batchItemFailures": []}
    assert json.loads(Receiver.received[-1][0])["messageId"] == "never-delivered-1"


def test_after_a_deletion_none_of_the_persons_pending_events_is_sent_and_the_webhook_is_told(
    queue_url: str, receiver: str, demo_config: Any
) -> None:
    query = new_container("QueryFunction")
    assert put(query, "crm", hook(receiver))["statusCode"] == 200
    stream = sample_event("route-kinesis")
    for record in stream["Records"]:  # stored after the destination was enabled
        change = json.loads(base64.b64decode(record["kinesis"]["data"]))
        change["dynamodb"]["NewImage"]["received_at"] = {"N": str(int(time.time() * 1000))}
        record["kinesis"]["data"] = base64.b64encode(json.dumps(change).encode()).decode()
    assert new_container("RouteFunction")(stream) == {"batchItemFailures": []}
    pending = received_messages(queue_url)
    people = {json.loads(m["Body"])["message"]["userId"] for m in pending}
    assert people == {"participant-42", "participant-7"}

    deleted = query(api_event("DELETE", "/v1/plugins/demo-plugin/users/participant-42", headers=ADMIN))
    assert deleted["statusCode"] == 202, deleted["body"]
    assert new_container("DeliverFunction")(as_sqs_event(pending)) == {"batchItemFailures": []}
    sent = [json.loads(data)["userId"] for data, _ in Receiver.received]
    assert sent == ["participant-7"]  # the forgotten person's two pending events were dropped
    # The signed delete message waits in the queue (shown after the longest a send could still take).
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_plugins_failures_are_paged_across_its_destinations_and_removed(aws: Any) -> None:
    from tracking.destinations.models import (  # noqa: PLC0415
        Counts,
        Destination,
        DestinationConfig,
        DestinationRef,
        Failure,
    )
    from tracking.storage.deliveries import DeliveryStore, PluginFailures  # noqa: PLC0415
    from tracking.storage.destinations import DestinationStore  # noqa: PLC0415

    destinations = DestinationStore(aws, "ControlTable")
    records = DeliveryStore(aws, "DeliveriesTable", lease_ms=60_000, keep_s=86_400)
    for name in ("a", "b"):
        config = DestinationConfig.model_validate(
            {"type": "webhook", "url": "https://x.example/", "secret": SECRET}
        )
        destinations.save_destination(
            Destination(
                plugin_id="p", destination_id=name, config=config, created_at=0, updated_at=0, enabled_at=0
            )
        )
        message = {"message": {"type": "track", "userId": "u"}}
        records.add_failures(
            DestinationRef("p", name),
            [Failure(f"{name}-{n}", 1, 500, "HTTP 500", 1_000, message) for n in range(3)],
        )
    failures = PluginFailures(records, destinations)

    def every() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        cursor: str | None = None
        while True:
            page, cursor = failures.page("p", cursor, 2)
            seen += [(ref.destination_id, failure.message_id) for ref, failure in page]
            if cursor is None:
                return sorted(seen)

    assert every() == [(d, f"{d}-{n}") for d in ("a", "b") for n in range(3)]
    records.count(DestinationRef("p", "a"), Counts(failed=3))
    failures.remove(DestinationRef("p", "a"), ["a-0", "a-1", "a-2"])
    assert every() == [("b", f"b-{n}") for n in range(3)]
    assert records.stats(DestinationRef("p", "a"))["failed"] == 0  # off the counter too


@pytest.mark.parametrize(
    ("bots", "queued"), [("exclude", ["emoji-reactions"]), ("include", ["emoji-reactions"] * 2)]
)
def test_bot_events_are_routed_only_to_a_plugin_that_counts_them(
    queue_url: str, receiver: str, query: Invoke, bots: str, queued: list[str]
) -> None:
    config = sample_event("config-put")
    config["body"] = json.dumps({**json.loads(config["body"]), "bots": bots})
    assert query(config)["statusCode"] == 200
    assert put(query, "crm", hook(receiver, filter={"events": ["emoji-reactions"]}))["statusCode"] == 200
    stream = sample_event("route-kinesis")
    for n, record in enumerate(stream["Records"]):
        change = json.loads(base64.b64decode(record["kinesis"]["data"]))
        image = change["dynamodb"]["NewImage"]
        image["received_at"] = {"N": str(2_000_000_000_000)}
        if n == 0:  # Googlebot's reaction
            image["context"] = {"S": json.dumps({"bot": True, "agent": {"device": "bot"}})}
        record["kinesis"]["data"] = base64.b64encode(json.dumps(change).encode()).decode()
    assert new_container("RouteFunction")(stream) == {"batchItemFailures": []}
    assert [json.loads(m["Body"])["message"]["event"] for m in received_messages(queue_url)] == queued
