"""The exactly-once and merge properties (tests/integration/test_exactly_once.py, test_merge.py)
against AWS's DynamoDB Local instead of moto: real conditional writes, real BatchGetItem, real item
validation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from devstack.local import dynamodb
from devstack.local.lambdas import FunctionPool
from devstack.local.template import Template
from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.merge import MergeScenario, assert_merged_like_clean, merge_scenarios, publish, read_people
from tests.replay import CONFIG, Scenario, assert_exactly_once, replay, scenarios, stored_outcome
from tracking.settings import get_settings
from tracking.storage.dynamo import aws_client

pytestmark = pytest.mark.e2e
TEMPLATE = Template.load()


@pytest.fixture(scope="module")
def local_dynamodb() -> Iterator[dynamodb.Database]:
    if dynamodb.find_jar() is None:
        pytest.fail("DynamoDB Local is not installed: run `make deps` (make test does it)")
    database = dynamodb.start(None)  # in memory
    assert database.kind == "dynamodb-local"
    yield database
    database.stop()


@pytest.fixture(scope="module")
def functions_on_dynamodb_local(local_dynamodb: dynamodb.Database) -> Iterator[dynamodb.Database]:
    """The functions' botocore client pointed at DynamoDB Local for this module."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ENDPOINT_URL_DYNAMODB", local_dynamodb.endpoint)
    aws_client.cache_clear()
    get_settings.cache_clear()
    yield local_dynamodb
    mp.undo()
    aws_client.cache_clear()
    get_settings.cache_clear()


def fresh_tables(database: dynamodb.Database) -> Any:
    db = database.client()
    for name in ("AggregatesTable", "ControlTable", "EventsTable"):
        if name in db.list_tables()["TableNames"]:
            db.delete_table(TableName=name)
    dynamodb.ensure_tables(database, TEMPLATE)
    return db


def container(name: str) -> Any:
    return FunctionPool(TEMPLATE.functions()[name], size=1).invoke


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios(max_events=40))
def test_replays_with_failures_equal_one_clean_pass_on_dynamodb_local(
    functions_on_dynamodb_local: dynamodb.Database, scenario: Scenario
) -> None:
    db = fresh_tables(functions_on_dynamodb_local)
    put = api_event("PUT", "/v1/plugins/p1/config", CONFIG, headers={"x-api-key": SAMPLE_ADMIN_KEY})
    assert container("QueryFunction")(put)["statusCode"] == 200
    result = replay(scenario, container("AggregateFunction"))
    stored = stored_outcome(db)
    assert_exactly_once(scenario, result, stored)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(merge_scenarios(max_events=30))
def test_links_merge_exactly_once_on_dynamodb_local(
    functions_on_dynamodb_local: dynamodb.Database, merge: MergeScenario
) -> None:
    def run(scenario: Scenario) -> dict[str, Any]:
        fresh_tables(functions_on_dynamodb_local)
        query = container("QueryFunction")
        publish(query)
        assert replay(scenario, container("AggregateFunction")).on_failure == []
        return read_people(query, merge)

    merged = run(merge.scenario)
    assert_merged_like_clean(merge, merged, run(merge.resolved()))
