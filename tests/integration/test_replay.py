"""A replay through the functions, on moto (DynamoDB, SQS), a lake of real Parquet files and a real
HTTP receiver: the admin starts it (202), the replay function runs its chunks from the replay queue,
the delivery sends each listed event again, signed, with its first send's message id, and the
replay reports ``done`` with the count sent. Its records hold DynamoDB's conditions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.local.builders import api_event
from tests.integration.conftest import Invoke, body, new_container
from tests.integration.test_destinations import (
    ADMIN,
    BASE,
    Receiver,
    as_sqs_event,
    hook,
    put,
    received_messages,
    receiver,  # noqa: F401 - the fixture the tests below take
)
from tests.unit.test_lake_questions import lake_of
from tracking.models.canonical import CanonicalEvent
from tracking.storage.events import EventStore

DAY_MS = 1_764_000_000_000  # 2025-11-24 16:00 UTC
DAY = "2025-11-24"


@pytest.fixture
def queues(aws: Any, function_env: Any, tmp_path: Path) -> dict[str, str]:
    sqs = boto3.client("sqs")
    urls = {
        name: str(sqs.create_queue(QueueName=name)["QueueUrl"]) for name in ("DeliveryQueue", "ReplayQueue")
    }
    function_env(
        DELIVERY_QUEUE_URL=urls["DeliveryQueue"],
        REPLAY_QUEUE_URL=urls["ReplayQueue"],
        DESTINATIONS_ALLOW_LOCAL="true",
        LAKE_DIR=str(tmp_path / "lake"),
    )
    return urls


def stored(aws: Any, tmp_path: Path, count: int) -> list[CanonicalEvent]:
    events = [
        CanonicalEvent.model_validate(
            {
                "plugin_id": "demo-plugin",
                "user_id": f"person-{n}",
                "key": "purchase",
                "dialect": "segment",
                "event_id": f"m:replay-{n}",
                "message_id": f"replay-{n}",
                "event_time": DAY_MS + n,
                "received_at": DAY_MS + n,
            }
        )
        for n in range(count)
    ]
    store = EventStore(aws, "EventsTable", 400)
    for event in events:
        assert store.put(event)
    lake_of(tmp_path / "lake", events)
    return events


def run(queue_url: str, function: Invoke) -> int:
    runs = 0
    while messages := received_messages(queue_url):
        assert function(as_sqs_event(messages)) == {"batchItemFailures": []}
        runs += len(messages)
    return runs


def test_a_replay_sends_the_days_stored_events_again_and_reports_done(
    queues: dict[str, str],
    receiver: str,  # noqa: F811 - the fixture
    aws: Any,
    tmp_path: Path,
) -> None:
    query = new_container("QueryFunction")
    assert put(query, "crm", hook(receiver))["statusCode"] == 200
    stored(aws, tmp_path, 3)
    started = query(api_event("POST", f"{BASE}/crm/replay", {"from": DAY, "to": DAY}, headers=ADMIN))
    assert started["statusCode"] == 202, started["body"]
    replay_id = body(started)["replay_id"]
    status = f"{BASE}/crm/replays/{replay_id}"
    assert body(query(api_event("GET", status, headers=ADMIN)))["status"] == "pending"
    assert run(queues["ReplayQueue"], new_container("ReplayFunction")) == 1  # 3 events: one chunk
    assert run(queues["DeliveryQueue"], new_container("DeliverFunction")) == 3
    assert sorted(json.loads(data)["messageId"] for data, _ in Receiver.received) == [
        "replay-0",
        "replay-1",
        "replay-2",
    ]
    shown = body(query(api_event("GET", status, headers=ADMIN)))
    assert (shown["status"], shown["queued"], shown["sent"], shown["from"], shown["to"]) == (
        "done",
        3,
        3,
        DAY,
        DAY,
    )


def test_a_replay_is_the_admins_and_a_bad_one_is_a_422_or_a_404(
    queues: dict[str, str],
    receiver: str,  # noqa: F811
) -> None:
    query = new_container("QueryFunction")
    assert put(query, "crm", hook(receiver))["statusCode"] == 200
    created = body(query(api_event("POST", "/v1/plugins/demo-plugin/keys", {}, headers=ADMIN)))
    dashboard = {"x-api-key": created["key"]}
    answer = query(api_event("POST", f"{BASE}/crm/replay", {"from": DAY, "to": DAY}, headers=dashboard))
    assert answer["statusCode"] == 403
    for sent, code in (
        ({"from": DAY}, 422),
        ({"from": DAY, "to": "2025-11-01"}, 422),
        ("not json", 400),
    ):
        answer = query(api_event("POST", f"{BASE}/crm/replay", sent, headers=ADMIN))
        assert answer["statusCode"] == code, answer["body"]
    assert (
        query(api_event("POST", f"{BASE}/nope/replay", {"from": DAY, "to": DAY}, headers=ADMIN))["statusCode"]
        == 404
    )
    assert query(api_event("GET", f"{BASE}/crm/replays/{'0' * 32}", headers=ADMIN))["statusCode"] == 404
    assert received_messages(queues["ReplayQueue"]) == []


def test_a_replays_record_moves_once_per_chunk_and_counts_only_while_it_exists(aws: Any) -> None:
    from tracking.destinations.models import DestinationRef, Replay  # noqa: PLC0415
    from tracking.storage.replays import ReplayStore  # noqa: PLC0415

    store = ReplayStore(aws, "DeliveriesTable")
    ref = DestinationRef("p", "crm")
    store.create(Replay(ref, "r1", DAY, DAY, DAY_MS))
    read = store.get(ref, "r1")
    assert read is not None
    assert (read.status, read.chunk, read.position) == ("pending", 0, None)
    assert store.advance(read, position='["t", "e"]', queued=500, listed=False)
    assert not store.advance(read, position='["t", "e"]', queued=500, listed=False)  # chunk 0 again
    store.queued_next(read, 1)
    store.queued_next(read, 0)  # never moves back
    moved = store.get(ref, "r1")
    assert moved is not None
    assert (moved.chunk, moved.next_queued, moved.queued, moved.position) == (1, 1, 500, '["t", "e"]')
    assert store.advance(moved, position=None, queued=2, listed=True)
    store.settle(ref, "r1", sent=500, failed=1, skipped=1)
    store.settle(ref, "gone", sent=1, failed=0, skipped=0)  # a replay that is not there stays absent
    assert store.get(ref, "gone") is None
    done = store.get(ref, "r1")
    assert done is not None
    assert (done.status, done.position, done.sent) == ("done", None, 500)
    store.fail(done, "x" * 2000)
    failed = store.get(ref, "r1")
    assert failed is not None
    assert failed.status == "failed"
    assert len(failed.error or "") == 500
