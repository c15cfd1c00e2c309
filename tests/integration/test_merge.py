"""Merging, exactly once (on moto; tests/e2e/test_exactly_once_dynamodb_local.py runs it on DynamoDB
Local): events and links interleaved over shards and replayed with failures read as one clean pass in
which every event carried its resolved user from the start.

Bounded in ``make test``; ``MERGE_EXAMPLES=500`` runs it at length."""

from __future__ import annotations

import os
from typing import Any

import boto3
from hypothesis import HealthCheck, given, settings
from moto import mock_aws

from tests.integration.conftest import TEMPLATE, new_container
from tests.merge import MergeScenario, assert_merged_like_clean, merge_scenarios, publish, read_people
from tests.replay import Scenario, replay


def run(scenario: Scenario, merge: MergeScenario) -> dict[str, Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        for definition in TEMPLATE.table_definitions().values():
            dynamodb.create_table(**definition["create"])
        query = new_container("QueryFunction")
        publish(query)
        result = replay(scenario, new_container("AggregateFunction"))
        assert result.on_failure == []
        return read_people(query, merge)


EXAMPLES = int(os.environ.get("MERGE_EXAMPLES", "40"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(merge_scenarios())
def test_links_merge_exactly_once_whatever_the_order_and_the_retries(merge: MergeScenario) -> None:
    merged = run(merge.scenario, merge)
    clean = run(merge.resolved(), merge)
    assert_merged_like_clean(merge, merged, clean)
