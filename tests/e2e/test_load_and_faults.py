"""Load and faults on the local stack over HTTP: a bounded load run whose aggregates must equal what
was sent, and a stack killed mid-stream and restarted that loses no event and counts none twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from devstack.local.stack import StackError, crash_stack, eventually, start_stack, stop_stack
from devstack.tools import load

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("shards", [1, 4])
def test_a_bounded_load_run_aggregates_exactly_what_was_sent(tmp_path: Path, shards: int) -> None:
    # With 4 emulated stream shards, one user's events reach the aggregator on several of them (the
    # events the client named are keyed by their own id), as on AWS: still every count exact.
    stack = start_stack(tmp_path, extra_env={"LOCAL_STREAM_SHARDS": str(shards)})
    try:
        result = load.run(stack, events=2_000, clients=8, drain_timeout_s=120)
    finally:
        stop_stack(stack)
    summary = result.summary()
    assert result.failures == []
    assert result.connection_errors == []
    assert result.mismatches == [], result.mismatches[:5]
    assert summary["events"] >= 2_000
    assert summary["latency_p50_ms"] > 0


def test_a_stack_killed_mid_stream_and_restarted_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    try:
        first = start_stack(
            tmp_path, in_memory=False, own_process_group=True, extra_env={"LOCAL_STREAM_SHARDS": "4"}
        )
    except StackError as exc:
        pytest.fail(str(exc))
    assert first.admin("PUT", f"/v1/plugins/{load.PLUGIN}/config", load.CONFIG).status == 200
    sent: Counter[tuple[str, str, str]] = Counter()
    for user in range(200):
        participant = f"crash-{user:04d}"
        batch = [{"key": "emoji", "value": "😍"}] * 10 + [{"key": "handouts", "value": "a.pdf"}] * 10
        reply = first.request(
            "POST",
            f"/v1/plugins/{load.PLUGIN}/track",
            {"user_id": participant, "events": batch},
            source_ip=f"127.0.{50 + user // 200}.{user % 200 + 1}",
        )
        assert reply.status == 200
        sent[(load.PLUGIN, "emoji", participant)] += 10
        sent[(load.PLUGIN, "handouts", participant)] += 10
    before_crash = load.aggregate_counts(first.database())
    crash_stack(first)  # kill -9 to the stack, DynamoDB Local and the function processes
    assert before_crash != sent, "the stream was already drained: the crash did not land mid-stream"

    second = start_stack(tmp_path, in_memory=False, extra_env={"LOCAL_STREAM_SHARDS": "4"})
    try:

        def drained() -> Counter[tuple[str, str, str]] | None:
            counts = load.aggregate_counts(second.database())
            return counts if counts == sent else None

        assert eventually(drained, timeout_s=120) == sent
        # Redeliveries after the restart were skipped, not added: nothing more arrives.
        assert load.aggregate_counts(second.database()) == sent
        # And the lake, whose poller was killed too, holds every stored event once
        stored = sum(sent.values())
        rows = f"SELECT count(*), count(DISTINCT event_id) FROM events WHERE plugin_id = '{load.PLUGIN}'"

        def in_lake() -> list[str] | None:
            found = second.cli("sql", rows).splitlines()[1].split("\t")
            return found if found == [str(stored), str(stored)] else None

        assert eventually(in_lake, timeout_s=60) == [str(stored), str(stored)]
    finally:
        stop_stack(second)
