"""Every file in events/ is a real event of one route (API Gateway REST proxy) or of the stream
(a DynamoDB Streams tumbling-window batch); each runs through the function template.yaml gives it."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import boto3
import pytest

from devstack.local.apigw import match
from tests.conftest import EVENTS_DIR, SAMPLE_REPLAY_ID, sample_event, seed_sample_key, seed_sample_replay
from tests.integration.conftest import TEMPLATE, Invoke, new_container, stored_events

SAMPLES = sorted(path.stem for path in EVENTS_DIR.glob("*.json"))
API_SAMPLES = [name for name in SAMPLES if "httpMethod" in sample_event(name)]
ROUTES = TEMPLATE.routes()
BATCH_ROUTES = {"/v1/batch", "/v1/import", "/v1/b", "/beacon/v1/batch"}


@pytest.fixture(autouse=True)
def local_lake(tmp_path: Any, function_env: Any, aws: Any) -> None:
    """The lake's routes read a local lake (an empty one: their answers are empty, not refused); the
    destinations' samples name a local receiver (``make invoke`` runs them against the local stack)
    and a retry of failures fills the delivery queue."""
    sqs = boto3.client("sqs")
    url, replays = (sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("DeliveryQueue", "ReplayQueue"))
    function_env(
        LAKE_DIR=str(tmp_path / "lake"),
        DESTINATIONS_ALLOW_LOCAL="true",
        DELIVERY_QUEUE_URL=url,
        REPLAY_QUEUE_URL=replays,
    )


def test_there_is_a_sample_event_for_every_route_and_the_stream() -> None:
    covered = {(sample_event(name)["httpMethod"], sample_event(name)["resource"]) for name in API_SAMPLES}
    assert {(route.method, route.path) for route in ROUTES} <= covered
    assert set(SAMPLES) - set(API_SAMPLES) == {
        "aggregate-stream",
        "forget-stream",
        "lake-firehose",
        "route-kinesis",
        "deliver-sqs",
        "replay-sqs",
    }


def test_the_change_stream_sample_runs_through_the_route_function(
    aws: Any, query: Invoke, function_env: Any, demo_config: Any
) -> None:
    """The aggregate sample's stored events as the Kinesis stream hands them to the router: with the
    sample destination saved after they were stored, none is queued (a destination gets what is
    stored once it is enabled)."""
    url = boto3.client("sqs").get_queue_url(QueueName="DeliveryQueue")["QueueUrl"]
    assert query(sample_event("destination-put"))["statusCode"] == 200
    assert new_container("RouteFunction")(sample_event("route-kinesis")) == {"batchItemFailures": []}
    assert boto3.client("sqs").receive_message(QueueUrl=url).get("Messages", []) == []


def test_the_queue_sample_runs_through_the_deliver_function(
    aws: Any, query: Invoke, function_env: Any, demo_config: Any
) -> None:
    """The sample message to the sample destination (a receiver at 127.0.0.1:9000 that is not there),
    queued a year ago: past the retries' max age, so the refused connection puts it in the failures."""
    assert query(sample_event("destination-put"))["statusCode"] == 200
    assert new_container("DeliverFunction")(sample_event("deliver-sqs")) == {"batchItemFailures": []}
    (failure,) = json.loads(query(sample_event("destination-failures-get"))["body"])["failures"]
    assert failure["messageId"] == "sample-message-0001"
    assert "connection" in failure["last_error"]


def test_the_replay_samples_start_a_replay_run_a_chunk_and_read_it(
    aws: Any, query: Invoke, demo_config: Any
) -> None:
    """The replay's POST answers 202 and queues its first chunk; the sample chunk runs the sample
    replay (recorded as a POST would have) over the empty lake: done, nothing to send."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="ReplayQueue")["QueueUrl"]
    assert query(sample_event("destination-put"))["statusCode"] == 200
    started = query(sample_event("destination-replay"))
    assert started["statusCode"] == 202, started["body"]
    (chunk,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert json.loads(chunk["Body"])["replay_id"] == json.loads(started["body"])["replay_id"]
    seed_sample_replay(aws)
    assert new_container("ReplayFunction")(sample_event("replay-sqs")) == {"batchItemFailures": []}
    shown = json.loads(query(sample_event("destination-replay-get"))["body"])
    assert (shown["replay_id"], shown["status"], shown["queued"]) == (SAMPLE_REPLAY_ID, "done", 0)


def test_the_firehose_sample_runs_through_the_lake_function(aws: Any) -> None:
    # The aggregate sample's five stored events as Firehose hands them over, and a claim of a client id
    answer = new_container("LakeFunction")(sample_event("lake-firehose"))
    results = answer["records"]
    assert [r["result"] for r in results] == ["Ok"] * 5 + ["Dropped"]
    rows = [json.loads(base64.b64decode(r["data"])) for r in results[:5]]
    assert {
        (r["metadata"]["partitionKeys"]["plugin_id"], row["name"])
        for r, row in zip(results[:5], rows, strict=True)
    } == {
        ("demo-plugin", "emoji-reactions"),
        ("demo-plugin", "handouts"),
        ("demo-bot", "visitor"),
        ("demo-bot", "purchase"),
    }
    assert {r["metadata"]["partitionKeys"]["day"] for r in results[:5]} == {"2025-11-24"}


def test_the_stream_sample_runs_through_the_aggregate_function(
    aggregate: Invoke, aws: Any, demo_config: Any
) -> None:
    answer = aggregate(sample_event("aggregate-stream"))
    assert answer == {"batchItemFailures": [], "state": {}}
    assert aws.scan(TableName="AggregatesTable")["Count"] > 0


def test_the_deletion_step_sample_runs_through_the_forget_function(
    forget: Invoke, query: Invoke, aws: Any, demo_config: Any
) -> None:
    assert forget(sample_event("forget-stream")) == {"batchItemFailures": []}
    answer = query(sample_event("deletion-get"))
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["status"] == "done"
    # The sample was requested a year ago: its record is kept 30 days from when it finished, not
    # born expired (DynamoDB's TTL would delete it before anyone read it).
    (kept,) = [i for i in aws.scan(TableName="EventsTable")["Items"] if i["kind"]["S"] == "deletion"]
    assert int(kept["expires_at"]["N"]) > time.time() + 29 * 86_400


@pytest.mark.parametrize("name", API_SAMPLES)
def test_sample_event_runs_through_its_function(
    name: str, ingest: Invoke, query: Invoke, aggregate: Invoke, forget: Invoke, aws: Any, demo_config: Any
) -> None:
    if name in ("user-get", "summary-get", "user-events-get"):  # these read what the stream aggregated
        aggregate(sample_event("aggregate-stream"))
    if name == "deletion-get":  # the deletion the forget function's sample carries out
        forget(sample_event("forget-stream"))
    if name == "key-revoke":
        seed_sample_key(aws)
    if name == "destination-replay-get":
        seed_sample_replay(aws)
    if name.startswith("destination-") and name != "destination-put":  # they name the sample's destination
        assert query(sample_event("destination-put"))["statusCode"] == 200
    event = sample_event(name)
    found = match(ROUTES, event["httpMethod"], event["path"])
    assert found is not None
    assert found[0].path == event["resource"]
    invoke = {"IngestFunction": ingest, "QueryFunction": query}[found[0].function]
    before = len(stored_events(aws))
    answer = invoke(event)
    assert answer["statusCode"] in (200, 201, 202, 204), answer.get("body")
    if event["httpMethod"] in ("POST", "GET") and found[0].function == "IngestFunction":
        reply = json.loads(answer["body"])
        if event["resource"] in BATCH_ROUTES:
            calls = len(json.loads(event["body"])["batch"])
            assert reply == {"success": True, "accepted": calls, "rejected": []}
        else:
            assert reply == {"success": True}
        if event["resource"] == "/v1/m":  # analytics.js's own metrics: answered, stored nowhere
            assert len(stored_events(aws)) == before
        else:
            assert len(stored_events(aws)) > before
