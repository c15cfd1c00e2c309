"""`make invoke FN=... EVENT=...` on every file of events/: each runs through the function
template.yaml gives it, against the running stack's DynamoDB, as `sam local invoke` would."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.local.apigw import match
from devstack.local.template import Template
from tests.conftest import EVENTS_DIR, ROOT, SAMPLE_ADMIN_KEY, seed_sample_key, seed_sample_replay
from tests.e2e.conftest import Stack, start_stack, stop_stack

pytestmark = pytest.mark.e2e

TEMPLATE = Template.load()
# The admin samples carry SAMPLE_ADMIN_KEY, so the stack runs with it; the config comes first, and
# the stream batch before the routes that read what it aggregated.
# The forget step runs before deletion-get reads its progress; the sample destination is saved before
# the samples that read it, and removed last.
ORDER = ["config-put", "aggregate-stream", "forget-stream", "destination-put"]
LAST = ["destination-delete"]
SAMPLES = ORDER + sorted(p.stem for p in EVENTS_DIR.glob("*.json") if p.stem not in ORDER + LAST) + LAST


def function_of(event: dict[str, Any]) -> str:
    if "deliveryStreamArn" in event:
        return "LakeFunction"
    if "httpMethod" not in event and event["Records"][0].get("eventSource") == "aws:kinesis":
        return "RouteFunction"
    if "httpMethod" not in event and event["Records"][0].get("eventSource") == "aws:sqs":
        return (
            "ReplayFunction" if "ReplayQueue" in event["Records"][0]["eventSourceARN"] else "DeliverFunction"
        )
    if "httpMethod" not in event:
        kinds = {record["dynamodb"]["NewImage"]["kind"]["S"] for record in event["Records"]}
        return "ForgetFunction" if kinds == {"deletion"} else "AggregateFunction"
    found = match(TEMPLATE.routes(), event["httpMethod"], event["path"])
    assert found is not None
    return found[0].function


@pytest.fixture(scope="module")
def sample_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("invoke"), admin_key=SAMPLE_ADMIN_KEY)
    yield running
    stop_stack(running)


def make_invoke(stack: Stack, function: str, event: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "invoke", f"FN={function}", f"EVENT={event}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "LOCAL_STATE_DIR": str(stack.state_dir),
        },
    )


def test_every_event_file_runs_through_make_invoke(sample_stack: Stack) -> None:
    seed_sample_key(sample_stack.database().client())  # the key events/key-revoke.json revokes
    seed_sample_replay(sample_stack.database().client())  # the replay the replay samples read and run
    for name in SAMPLES:
        path = EVENTS_DIR / f"{name}.json"
        event = json.loads(path.read_text())
        function = function_of(event)
        done = make_invoke(sample_stack, function, path)
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
        result = json.loads(done.stdout)
        if function == "AggregateFunction":
            assert result == {"batchItemFailures": [], "state": {}}, name
        elif function in ("ForgetFunction", "RouteFunction", "DeliverFunction", "ReplayFunction"):
            assert result == {"batchItemFailures": []}, name
        elif function == "LakeFunction":
            assert [r["result"] for r in result["records"]] == ["Ok"] * 5 + ["Dropped"], name
        else:
            assert result["statusCode"] in (200, 201, 202, 204), f"{name}: {result.get('body')}"
    stored = {(e["plugin_id"], e["key"]) for e in sample_stack.stored()}
    assert {
        ("demo-bot", "purchase"),
        ("demo-plugin", "emoji-reactions"),
        ("demo-plugin", "Order Completed"),
    } <= stored


def test_an_unknown_function_is_named_with_the_ones_there_are(sample_stack: Stack) -> None:
    done = make_invoke(sample_stack, "NoSuchFunction", EVENTS_DIR / "health.json")
    assert done.returncode != 0
    names = ", ".join(sorted(TEMPLATE.functions()))
    assert names == (
        "AggregateFunction, DeliverFunction, ForgetFunction, IngestFunction, LakeFunction, QueryFunction, "
        "ReplayFunction, RouteFunction"
    )
    assert names in done.stderr


def test_a_handler_that_raises_fails_the_command(sample_stack: Stack, tmp_path: Path) -> None:
    broken = tmp_path / "no-shard.json"
    event = json.loads((EVENTS_DIR / "aggregate-stream.json").read_text())
    del event["shardId"]
    broken.write_text(json.dumps(event))
    done = make_invoke(sample_stack, "AggregateFunction", broken)
    assert done.returncode != 0
    assert "MissingShardId" in done.stderr
