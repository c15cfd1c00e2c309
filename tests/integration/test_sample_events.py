"""Every file in events/ is a real API Gateway REST proxy event of one route; each runs through the
function template.yaml routes it to."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.apigw import match
from tests.conftest import EVENTS_DIR, sample_event
from tests.integration.conftest import TEMPLATE, Invoke, stored_events

SAMPLES = sorted(path.stem for path in EVENTS_DIR.glob("*.json"))
ROUTES = TEMPLATE.routes()


def test_there_is_a_sample_event_for_every_route() -> None:
    covered = {(sample_event(name)["httpMethod"], sample_event(name)["resource"]) for name in SAMPLES}
    assert {(route.method, route.path) for route in ROUTES} <= covered


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_event_runs_through_its_function(
    name: str, ingest: Invoke, query: Invoke, aws: Any, demo_config: Any
) -> None:
    event = sample_event(name)
    found = match(ROUTES, event["httpMethod"], event["path"])
    assert found is not None
    assert found[0].path == event["resource"]
    invoke = {"IngestFunction": ingest, "QueryFunction": query}[found[0].function]
    before = len(stored_events(aws))
    answer = invoke(event)
    assert answer["statusCode"] in (200, 204), answer.get("body")
    if event["httpMethod"] in ("POST", "GET") and found[0].function == "IngestFunction":
        assert json.loads(answer["body"]) == {"success": True}
        assert len(stored_events(aws)) > before
