"""The local stack's SQS (devstack/local/queues.py) behaves as SQS does for what the delivery uses, the
same scenario run against moto's SQS and against it through one boto3 client: visibility, receive
counts, a stale receipt, the redrive to a dead-letter queue; and it keeps its messages across a
restart. Lambda's SQS event source mapping (esm.QueuePoller) deletes what a batch did not name."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack.local.esm import QueueMapping, QueuePoller
from devstack.local.queues import Queues, QueueServer, QueueSpec, queue_specs
from devstack.local.template import Template
from tracking.storage.queue import SqsQueue

Factory = Callable[[int], tuple[Any, str, str]]  # visibility -> (client, queue url, dead-letter url)


def local_queues(tmp_path: Path) -> Iterator[Factory]:
    servers: list[QueueServer] = []

    def make(visibility: int) -> tuple[Any, str, str]:
        specs = [QueueSpec("Main", visibility, dead_letter="Dead", max_receive_count=3), QueueSpec("Dead")]
        server = QueueServer(("127.0.0.1", 0), Queues(tmp_path / "queues.sqlite", specs))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        client = boto3.client(
            "sqs",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        return client, server.url("Main"), server.url("Dead")

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def moto_queues() -> Iterator[Factory]:
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")

        def make(visibility: int) -> tuple[Any, str, str]:
            dead = client.create_queue(QueueName="Dead")["QueueUrl"]
            arn = client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})
            attributes = {"VisibilityTimeout": str(visibility), "RedrivePolicy": policy}
            main = client.create_queue(QueueName="Main", Attributes=attributes)["QueueUrl"]
            return client, main, dead

        yield make


@pytest.fixture(params=["moto", "local"])
def queues(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    yield from (moto_queues() if request.param == "moto" else local_queues(tmp_path))


def receive(client: Any, url: str, limit: int = 10) -> list[dict[str, Any]]:
    answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=limit, AttributeNames=["All"])
    return list(answer.get("Messages", []))


def test_a_received_message_is_hidden_counted_and_shown_again_when_its_visibility_is_changed(
    queues: Factory,
) -> None:
    client, url, _ = queues(30)
    SqsQueue(lambda: client, url).send([{"n": 1}])
    (first,) = receive(client, url)
    assert json.loads(first["Body"]) == {"n": 1}
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert receive(client, url) == []  # hidden for 30 s
    client.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    (again,) = receive(client, url)
    assert again["MessageId"] == first["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    client.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    with pytest.raises(ClientError):  # a deleted message's receipt is no longer valid
        client.change_message_visibility(
            QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0
        )
    assert receive(client, url) == []


def test_a_message_received_past_the_redrive_count_moves_to_the_dead_letter_queue(queues: Factory) -> None:
    client, url, dead = queues(0)
    client.send_message(QueueUrl=url, MessageBody="poison")
    for attempt in (1, 2, 3):
        (message,) = receive(client, url)
        assert message["Attributes"]["ApproximateReceiveCount"] == str(attempt)
    assert receive(client, url) == []
    (moved,) = receive(client, dead)
    assert moved["Body"] == "poison"


def test_show_again_sets_each_messages_backoff(queues: Factory) -> None:
    client, url, _ = queues(30)
    queue = SqsQueue(lambda: client, url)
    queue.send([{"n": n} for n in range(12)])  # two SendMessageBatch calls
    taken = receive(client, url) + receive(client, url)
    assert len(taken) == 12
    queue.show_again([(message["ReceiptHandle"], 0) for message in taken[:3]])
    assert len(receive(client, url)) == 3


def test_the_local_queues_keep_their_messages_across_a_restart(tmp_path: Path) -> None:
    specs = [QueueSpec("Main", 30)]
    first = Queues(tmp_path / "q.sqlite", specs)
    first.send("Main", ["kept", "taken"])
    taken = first.receive("Main", 1)
    first.close()  # the stack stops with one message in flight
    second = Queues(tmp_path / "q.sqlite", specs, clock=lambda: time.time() + 31)
    bodies = sorted(message["Body"] for message in second.receive("Main", 10))
    assert bodies == ["kept", "taken"]
    assert taken[0]["Body"] in bodies


def test_the_templates_delivery_queue_has_its_visibility_retention_and_redrive() -> None:
    specs = {spec.name: spec for spec in queue_specs(Template.load())}
    delivery = specs["DeliveryQueue"]
    assert (delivery.visibility_timeout_s, delivery.retention_s) == (180, 1_209_600)
    assert (delivery.dead_letter, delivery.max_receive_count) == ("DeliveryDeadLetterQueue", 100)


def test_the_queue_poller_deletes_what_the_batch_did_not_name_and_leaves_the_rest(tmp_path: Path) -> None:
    queues = Queues(tmp_path / "q.sqlite", [QueueSpec("Main", 0)])
    queues.send("Main", ["ok-1", "retry", "ok-2"])
    seen: list[list[str]] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        seen.append([record["body"] for record in event["Records"]])
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "retry"]
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}

    mapping = QueueMapping("Deliver", "Main", batch_size=10, report_batch_item_failures=True)
    poller = QueuePoller(queues, mapping, invoke, threading.Event())
    assert poller.poll_once(queues.spec("Main"))
    assert sorted(seen[0]) == ["ok-1", "ok-2", "retry"]
    assert [m["Body"] for m in queues.receive("Main", 10)] == ["retry"]
