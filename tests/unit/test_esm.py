"""Lambda's stream event source mapping as the local stack and the replay tests emulate it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from devstack.local.esm import ShardConsumer, matches, passes_filters
from devstack.local.template import StreamMapping, Template

MAPPING = StreamMapping(
    function="F",
    table="T",
    batch_size=4,
    bisect_on_error=True,
    maximum_retry_attempts=2,
    report_batch_item_failures=True,
    tumbling_window_s=900,
)


def record(seq: int, name: str = "INSERT") -> dict[str, Any]:
    return {
        "eventName": name,
        "dynamodb": {"SequenceNumber": f"{seq:021d}", "NewImage": {"kind": {"S": "track"}}},
    }


class Function:
    def __init__(self, fail: set[int] | None = None, crash_on: set[int] | None = None) -> None:
        self.fail = fail or set()
        self.crash_on = crash_on or set()
        self.calls: list[list[int]] = []

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in event["Records"]]
        self.calls.append(seqs)
        assert event["shardId"] == "shard-1"
        if self.crash_on & set(seqs):
            raise RuntimeError("function error")
        failed = [{"itemIdentifier": f"{s:021d}"} for s in seqs if s in self.fail]
        return {"batchItemFailures": failed, "state": {}}


def consumer(
    function: Function, mapping: StreamMapping = MAPPING
) -> tuple[ShardConsumer, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    return ShardConsumer(mapping, function, "shard-1", "arn:stream", sent.append), sent


def test_records_are_delivered_in_batches_of_the_configured_size() -> None:
    function = Function()
    esm, sent = consumer(function)
    esm.deliver([record(i) for i in range(1, 10)])
    assert function.calls == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert sent == []


def test_a_partial_failure_is_retried_from_the_lowest_failed_record() -> None:
    function = Function(fail={3, 4})

    def fails_once(event: dict[str, Any]) -> dict[str, Any]:
        answer = function(event)
        function.fail.clear()
        return answer

    esm, sent = consumer(fails_once)  # type: ignore[arg-type]
    esm.deliver([record(i) for i in range(1, 5)])
    assert function.calls == [[1, 2, 3, 4], [3, 4]]
    assert sent == []


def test_a_function_error_bisects_the_batch() -> None:
    function = Function(crash_on={2})
    esm, sent = consumer(function, replace(MAPPING, maximum_retry_attempts=3))
    esm.deliver([record(i) for i in range(1, 5)])
    assert function.calls[:3] == [[1, 2, 3, 4], [1, 2], [1]]
    assert [3, 4] in function.calls
    assert [m["DDBStreamBatchInfo"]["startSequenceNumber"] for m in sent] == [f"{2:021d}"]


def test_a_record_that_always_fails_goes_to_the_on_failure_destination_and_the_shard_moves_on() -> None:
    function = Function(fail={2})
    esm, sent = consumer(function)
    esm.deliver([record(i) for i in range(1, 9)])
    assert function.calls == [[1, 2, 3, 4], [2, 3, 4], [2, 3, 4], [5, 6, 7, 8]]
    (message,) = sent
    info = message["DDBStreamBatchInfo"]
    assert (info["shardId"], info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "shard-1",
        f"{2:021d}",
        f"{4:021d}",
        3,
    )
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_a_tumbling_window_response_without_state_is_a_failure() -> None:
    calls: list[int] = []

    def stateless(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return {"batchItemFailures": []}

    esm, sent = consumer(stateless, replace(MAPPING, bisect_on_error=False))  # type: ignore[arg-type]
    esm.deliver([record(1)])
    assert (len(calls), len(sent)) == (3, 1)


def mappings() -> dict[str, Any]:
    return {mapping.function: mapping for mapping in Template.load().stream_mappings()}


def test_filters_match_the_templates_pattern() -> None:
    aggregate, forget = mappings()["AggregateFunction"], mappings()["ForgetFunction"]
    assert passes_filters(aggregate, record(1))
    assert not passes_filters(aggregate, record(1, "MODIFY"))
    identify = record(1)
    identify["dynamodb"]["NewImage"]["kind"]["S"] = "identify"
    assert passes_filters(aggregate, identify)  # profiles and links
    assert not passes_filters(forget, identify)
    for kind in ("index", "deletion"):
        other = record(1)
        other["dynamodb"]["NewImage"]["kind"]["S"] = kind
        assert not passes_filters(aggregate, other)
        assert passes_filters(forget, other) == (kind == "deletion")
    assert matches({"a": {"b": [1, 2]}}, {"a": {"b": 2}})
    assert not matches({"a": {"b": [1, 2]}}, {"a": {}})


def test_the_templates_stream_mappings() -> None:
    mapping = mappings()["AggregateFunction"]
    assert (mapping.function, mapping.table, mapping.batch_size, mapping.batching_window_s) == (
        "AggregateFunction",
        "EventsTable",
        100,
        1,
    )
    assert mapping.bisect_on_error
    assert mapping.report_batch_item_failures
    assert 0 < mapping.maximum_retry_attempts <= 10
    assert mapping.tumbling_window_s > 0
    assert mapping.on_failure == "AggregateFailureQueue"
    forget = mappings()["ForgetFunction"]
    assert (forget.table, forget.batch_size, forget.on_failure) == ("EventsTable", 1, "ForgetFailureQueue")
    assert forget.report_batch_item_failures
