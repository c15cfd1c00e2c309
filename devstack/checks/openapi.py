"""Builds the OpenAPI document served at ``GET /openapi.json`` from what the routes declare.

Every route carries its summary, tag, security, reply model and error replies, and its request body
and query parameters (``tracking.http.operation``); Powertools turns the routes of the ingest and
query resolvers into paths and the reply models into component schemas. This only assembles the
two: it files each route's query parameters beside its path parameters, adds the schemas of the
request bodies the routes name, and the ``x-api-key`` scheme. The document is written to
``layers/shared/tracking/query/openapi.json`` (``make openapi``) so the query function serves a file
instead of generating it at cold start; a test fails when it is out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from tracking import __version__
from tracking.http import BODY_MODELS
from tracking.ingest.routes import create_ingest_app
from tracking.query.routes import create_query_app

TARGET = Path(__file__).resolve().parents[2] / "layers" / "shared" / "tracking" / "query" / "openapi.json"
QUERY_EXTENSION = "x-query-parameters"
REF_PREFIX = "#/components/schemas/"


def _document(app: Any) -> dict[str, Any]:
    schema = app.get_openapi_schema(
        title="x", version="x", security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)}
    )
    document: dict[str, Any] = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    return document


def _body_schemas() -> dict[str, Any]:
    """The request models the routes name, each as a component (its nested models too)."""
    schemas: dict[str, Any] = {}
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for nested, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(nested, definition)
        schemas[name] = schema
    return schemas


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """The component schemas the paths use, directly or through other schemas (Powertools also adds
    its validation errors, which these routes never answer)."""
    found: set[str] = set()
    pending: list[Any] = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(REF_PREFIX) and ref[len(REF_PREFIX) :] not in found:
                name = ref[len(REF_PREFIX) :]
                found.add(name)
                pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def build() -> dict[str, Any]:
    documents = [
        _document(create_ingest_app(cast(Any, None))),
        _document(create_query_app(cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None))),
    ]
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for document in documents:
        for path, methods in document["paths"].items():
            paths.setdefault(path, {}).update(methods)
        schemas.update(document.get("components", {}).get("schemas", {}))
    for methods in paths.values():
        for operation in methods.values():
            operation["parameters"] = operation.get("parameters", []) + operation.pop(QUERY_EXTENSION, [])
            for parameter in operation["parameters"]:
                parameter["schema"].pop("title", None)
            operation.setdefault("security", [])
            for response in operation["responses"].values():
                if not response.get("content", True):
                    del response["content"]  # a reply without a body
    schemas.update(_body_schemas())
    schemas = {name: schemas[name] for name in sorted(_referenced(paths, schemas))}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Event tracking API",
            "version": __version__,
            "description": "Ingest (widget, plugin and Segment-spec dialects), plugin configs, dashboards.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
