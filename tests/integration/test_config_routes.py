"""Plugin config routes on moto: admin key, pydantic validation as 422, write keys, round trip."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import SAMPLE_ADMIN_KEY, sample_event
from tests.helpers import api_event
from tests.integration.conftest import Invoke, body, new_container
from tests.integration.faults import dynamodb_fails
from tracking.settings import get_settings
from tracking.wiring import control_store

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
KEY = {"key": "handouts", "name": {"en": "Handouts"}, "aggregations": ["array"]}


def put(query: Invoke, plugin: str, config: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return query(
        api_event(
            "PUT", f"/v1/plugins/{plugin}/config", config, headers=ADMIN if headers is None else headers
        )
    )


def test_health(query: Invoke) -> None:
    answer = query(sample_event("health"))
    assert (answer["statusCode"], body(answer)) == (200, {"status": "ok"})


def test_published_config_reads_back_as_published(query: Invoke, demo_config: Any) -> None:
    answer = query(sample_event("config-get"))
    assert answer["statusCode"] == 200
    got = body(answer)
    assert got["tracking"]["events"][0]["name"] == {
        "en": "Handouts downloads",
        "fr": "Nombre de téléchargements",
    }
    assert got["allowed_origins"] == demo_config["allowed_origins"]
    assert got["write_keys"] == ["wk_live_123"]


def test_each_publish_is_a_new_version(query: Invoke) -> None:
    first = body(put(query, "p1", {"tracking": {"events": [KEY]}}))
    second = body(put(query, "p1", {"tracking": {"events": [KEY]}}))
    assert (first["version"], second["version"]) == (1, 2)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"aggregations": ["median"]}, "tracking.events[0].aggregations[0]"),
        ({"name": {}}, "tracking.events[0].name"),
        ({"name": {"en": " "}}, "tracking.events[0].name"),
        ({"value_type": "emoji"}, "tracking.events[0].value_type"),
    ],
)
def test_invalid_configs_are_422_naming_the_field(query: Invoke, change: dict[str, Any], field: str) -> None:
    answer = put(query, "p1", {"tracking": {"events": [{**KEY, **change}]}})
    assert answer["statusCode"] == 422
    assert body(answer)["error"]["details"][0]["field"] == field
    assert query(api_event("GET", "/v1/plugins/p1/config", headers=ADMIN))["statusCode"] == 404


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": "not-the-admin-key"}, {"x-api-key": "\ud800"}, {"x-api-key": "dk_\u00e9\n"}],
)
def test_config_routes_need_the_admin_key(query: Invoke, headers: dict[str, str]) -> None:
    for answer in (
        put(query, "p1", {}, headers),
        query(api_event("GET", "/v1/plugins/p1/config", headers=headers)),
    ):
        assert (answer["statusCode"], body(answer)["error"]["code"]) == (401, "UNAUTHORIZED")


def test_a_write_key_belongs_to_one_plugin(query: Invoke) -> None:
    assert put(query, "p1", {"write_keys": ["wk_shared_1"]})["statusCode"] == 200
    taken = put(query, "p2", {"write_keys": ["wk_other_22", "wk_shared_1"]})
    assert taken["statusCode"] == 422
    assert body(taken)["error"]["details"] == [{"field": "write_keys[1]", "message": "already in use"}]
    # Dropping it from p1 frees it.
    assert put(query, "p1", {"write_keys": []})["statusCode"] == 200
    assert put(query, "p2", {"write_keys": ["wk_shared_1"]})["statusCode"] == 200


def test_a_dropped_write_key_stops_working(query: Invoke, ingest: Invoke, demo_config: Any) -> None:
    headers = {"Authorization": "Basic d2tfbGl2ZV8xMjM6"}  # wk_live_123:
    call = {"event": "e", "userId": "u"}
    assert ingest(api_event("POST", "/v1/track", call, headers=headers))["statusCode"] == 200
    assert put(query, "demo-plugin", {**demo_config, "write_keys": []})["statusCode"] == 200
    fresh = new_container("IngestFunction")
    assert fresh(api_event("POST", "/v1/track", call, headers=headers))["statusCode"] == 401


def test_a_throttled_publish_is_503_and_changes_nothing(query: Invoke, demo_config: Any) -> None:
    with dynamodb_fails("TransactWriteItems"):
        answer = put(query, "demo-plugin", {"tracking": {"events": [KEY]}})
    assert answer["statusCode"] == 503
    assert body(query(sample_event("config-get")))["write_keys"] == ["wk_live_123"]


def test_delete_existing_events_records_a_reset_for_that_key_only(query: Invoke) -> None:
    other = {"key": "other", "name": {"en": "Other"}, "aggregations": ["increment"]}
    put(query, "p1", {"tracking": {"events": [KEY, other]}})
    put(query, "p1", {"tracking": {"events": [{**KEY, "delete_existing_events": True}, other]}})
    published = control_store(get_settings()).get_config("p1")
    assert published is not None
    assert set(published.resets) == {"handouts"}
    assert published.reset_at("handouts") == published.published_at
