"""Property: whatever Lambda's at-least-once delivery does (retries from the first failed record,
bisected batches, batches delivered again after a lost response, throttled storage, poison records),
the aggregates and rollups equal one clean pass over the streams. On moto; the DynamoDB Local run is
in tests/e2e/test_exactly_once_dynamodb_local.py."""

from __future__ import annotations

from typing import Any

import boto3
from hypothesis import HealthCheck, given, settings
from moto import mock_aws

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import TEMPLATE, new_container
from tests.replay import CONFIG, Scenario, assert_exactly_once, replay, scenarios, stored_outcome


def run_on_fresh_tables(scenario: Scenario) -> tuple[Any, Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        for definition in TEMPLATE.table_definitions().values():
            dynamodb.create_table(**definition["create"])
        query = new_container("QueryFunction")
        put = api_event("PUT", "/v1/plugins/p1/config", CONFIG, headers={"x-api-key": SAMPLE_ADMIN_KEY})
        assert query(put)["statusCode"] == 200
        result = replay(scenario, new_container("AggregateFunction"))
        return result, stored_outcome(dynamodb)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(scenarios())
def test_replays_with_failures_equal_one_clean_pass(scenario: Scenario) -> None:
    result, stored = run_on_fresh_tables(scenario)
    assert_exactly_once(scenario, result, stored)
