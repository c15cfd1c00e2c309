"""The OpenAPI document served at /openapi.json stays true to the routes."""

from __future__ import annotations

import json
from typing import Any

from devstack.checks.openapi import TARGET, render
from devstack.local.template import Template
from tracking.api_errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from tracking.http import OK_BODY
from tracking.models.responses import Error, Success


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TARGET.read_text(encoding="utf-8"))
    return loaded


def test_the_served_document_is_what_the_routes_generate() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), "run `make openapi` and commit the result"


def test_every_route_of_the_template_is_documented_and_nothing_else() -> None:
    routes = {(r.method.lower(), r.path) for r in Template.load().routes()}
    # Preflights the gateway answers from Powertools' CORS handling are not operations of their own.
    routes = {(method, path) for method, path in routes if method != "options" or "{plugin_id}" in path}
    documented = {(method, path) for path, methods in document()["paths"].items() for method in methods}
    assert documented == routes


def test_every_reference_resolves() -> None:
    doc = document()
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[-1])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(doc)
    assert refs <= set(doc["components"]["schemas"])


def test_errors_are_documented_in_the_contracts_shape() -> None:
    operation = document()["paths"]["/api/analytics/track"]["post"]
    assert operation["responses"]["429"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WidgetTrack"
    }
    rows = document()["paths"]["/v1/plugins/{plugin_id}/rows"]["get"]
    assert {p["name"] for p in rows["parameters"]} == {"plugin_id", "limit", "cursor", "aggregation.<key>"}
    assert rows["security"] == [{"apiKey": []}]


def test_every_error_a_client_can_get_is_the_documented_error_reply() -> None:
    # Given every contract error, with and without field details
    errors = [cls("message") for cls in (BadRequest, PayloadTooLarge, Unauthorized, Forbidden, NotFound)]
    errors += [ValidationFailed("bad", [{"field": "data.items[3].currency", "message": "too long"}])]
    errors += [RateLimited(retry_after=3), Unavailable("down")]
    for error in errors:
        # When its body is read as the documented reply model
        body = error.body()
        # Then it is that model, field for field (details only when there are some)
        assert Error.model_validate(body).body() == body
    assert "details" not in Error.model_validate(BadRequest("x").body()).body()


def test_ingest_answers_the_documented_success_reply() -> None:
    assert Success().body() == OK_BODY


def test_the_document_is_built_from_what_the_routes_declare() -> None:
    # Every operation names a success reply and the contract's error replies, and nothing else; the
    # lake's answer a 202 while its query runs.
    running = {"/v1/plugins/{plugin_id}/breakdown", "/v1/plugins/{plugin_id}/retention"}
    running.add("/v1/plugins/{plugin_id}/queries/{query_id}")
    for path, methods in document()["paths"].items():
        for method, operation in methods.items():
            assert operation["summary"], (method, path)
            assert operation["tags"], (method, path)
            codes = set(operation["responses"])
            assert {"400", "401", "403", "404", "422", "429", "503"} < codes, (method, path)
            assert len(codes) == (9 if path in running else 8), (method, path)
            assert ({"200", "202"} <= codes) == (path in running), (method, path)
    rows = document()["components"]["schemas"]["Rows"]
    assert set(rows["required"]) == {"rows", "next_cursor"}
