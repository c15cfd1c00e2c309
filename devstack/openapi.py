"""Builds the OpenAPI document served at ``GET /openapi.json``.

Powertools generates the paths and path parameters from the ingest and query resolvers; this adds
what those routes parse themselves: request bodies (from the dialects' pydantic models), query
parameters, responses in the contract's shapes and the ``x-api-key`` scheme. The document is
written to ``layers/shared/tracking/api/openapi.json`` (``make openapi``) so the query function
serves a file instead of generating it at cold start; a test fails when it is out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

from tracking import __version__
from tracking.api.ingest import create_ingest_app
from tracking.api.query import create_query_app
from tracking.dialects.plugin import PluginBatch, PluginTrack
from tracking.dialects.segment import SegmentBatch, SegmentCall
from tracking.dialects.widget import WidgetTrack
from tracking.errors import CLIENT_ERROR_CODES, INTERNAL_ERROR_CODE
from tracking.models.config import PluginConfig

TARGET = Path(__file__).resolve().parent.parent / "layers" / "shared" / "tracking" / "api" / "openapi.json"
ERROR_CODE_ENUM = [*CLIENT_ERROR_CODES, INTERNAL_ERROR_CODE]
ERRORS = {
    "400": "Malformed JSON or payload shape (ANALYTICS_001), or too large (ANALYTICS_002)",
    "401": "Missing or unknown key (UNAUTHORIZED)",
    "403": "Key of another plugin, or origin not allowed (FORBIDDEN)",
    "404": "Unknown route or plugin (NOT_FOUND)",
    "422": "Validation failed (VALIDATION); details name each field",
    "429": "Rate limited (RATE_LIMITED); see Retry-After",
    "503": "Storage unavailable (UNAVAILABLE); retry, nothing was half-written",
}
SCHEMAS: dict[str, Any] = {
    "Success": {"type": "object", "required": ["success"], "properties": {"success": {"const": True}}},
    "Error": {
        "type": "object",
        "required": ["success", "error"],
        "properties": {
            "success": {"const": False},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"enum": ERROR_CODE_ENUM},
                    "message": {"type": "string"},
                    "details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "message"],
                            "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                        },
                    },
                },
            },
        },
    },
    "Cell": {
        "type": "object",
        "required": ["value", "display"],
        "properties": {
            "value": {},
            "display": {"type": "string"},
            "total": {"type": "integer"},
            "truncated": {"type": "boolean"},
        },
    },
    "Row": {
        "type": "object",
        "required": ["user_id", "values"],
        "properties": {
            "user_id": {"type": "string"},
            "values": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/Cell"}},
        },
    },
    "Rows": {
        "type": "object",
        "required": ["rows", "next_cursor"],
        "properties": {
            "rows": {"type": "array", "items": {"$ref": "#/components/schemas/Row"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "Columns": {
        "type": "object",
        "required": ["columns"],
        "properties": {
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key", "name", "aggregation", "aggregations", "value_type"],
                    "properties": {
                        "key": {"type": "string"},
                        "name": {"type": "string"},
                        "aggregation": {"type": "string"},
                        "aggregations": {"type": "array", "items": {"type": "string"}},
                        "value_type": {"type": ["string", "null"]},
                    },
                },
            }
        },
    },
    "Summary": {
        "type": "object",
        "required": ["chatbot_id", "from", "to", "counts", "funnel", "ab_test", "revenue_eur"],
        "properties": {
            "chatbot_id": {"type": "string"},
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "funnel": {"type": "array", "items": {"type": "object"}},
            "ab_test": {"type": "object"},
            "revenue_eur": {"type": "number"},
        },
    },
    "Published": {"type": "object", "required": ["success", "plugin_id", "version", "published_at"]},
    "Key": {"type": "object", "required": ["key", "plugin_id"], "properties": {"key": {"type": "string"}}},
    "Plugins": {"type": "object", "required": ["plugins"]},
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
}


def _model(model: Any) -> dict[str, Any]:
    """A pydantic model as a component schema (its nested models too); answers a reference to it."""
    schema: dict[str, Any] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        SCHEMAS.setdefault(name, definition)
    SCHEMAS.setdefault(model.__name__, schema)
    return _ref(model.__name__)


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(
    name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    """What each operation takes and answers, beyond what Powertools sees in the route."""
    widget = _json_body(_model(WidgetTrack))
    plugin = _json_body({"oneOf": [_model(PluginTrack), _model(PluginBatch)]})
    _model(PluginConfig)
    segment_call = _json_body(_model(SegmentCall))
    aggregation = _query("aggregation.<key>", "Another of the key's listed aggregations")
    legacy = [
        _query("e", "Event type", required=True),
        _query("u", "User token", required=True),
        _query("d", "URL-encoded JSON data"),
    ]
    ingest: dict[str, Any] = {"tags": ["ingest"], "security": [], "ok": ("200", _ref("Success"))}
    reads: dict[str, Any] = {"tags": ["dashboard"], "security": [{"apiKey": []}]}
    admin: dict[str, Any] = {"tags": ["admin"], "security": [{"apiKey": []}]}
    return {
        ("post", "/api/analytics/track"): {**ingest, "summary": "Track a widget event", "body": widget},
        ("post", "/api/events/track"): {**ingest, "summary": "Track a widget event (alias)", "body": widget},
        ("post", "/api/save"): {**ingest, "summary": "Track a widget event (legacy alias)", "body": widget},
        ("get", "/api/analytics/track"): {
            **ingest,
            "summary": "Track a widget event (legacy GET)",
            "query": legacy,
        },
        ("get", "/api/events/track"): {
            **ingest,
            "summary": "Track a widget event (legacy GET alias)",
            "query": legacy,
        },
        ("post", "/v1/plugins/{plugin_id}/track"): {
            **ingest,
            "summary": "Track plugin events",
            "body": plugin,
        },
        ("options", "/v1/plugins/{plugin_id}/track"): {
            **ingest,
            "summary": "CORS preflight (answered for allowed origins)",
            "ok": ("204", None),
        },
        ("post", "/v1/track"): {**ingest, "summary": "Segment-spec track", "body": segment_call},
        ("post", "/v1/identify"): {**ingest, "summary": "Segment-spec identify", "body": segment_call},
        ("post", "/v1/batch"): {
            **ingest,
            "summary": "Segment-spec batch",
            "body": _json_body(_model(SegmentBatch)),
        },
        ("get", "/health"): {
            "tags": ["health"],
            "security": [],
            "summary": "Health",
            "ok": ("200", _ref("Health")),
        },
        ("get", "/v1/plugins"): {
            **reads,
            "summary": "Plugins this key reads",
            "ok": ("200", _ref("Plugins")),
        },
        ("put", "/v1/plugins/{plugin_id}/config"): {
            **admin,
            "summary": "Publish a plugin's config",
            "body": _json_body(_model(PluginConfig)),
            "ok": ("200", _ref("Published")),
        },
        ("get", "/v1/plugins/{plugin_id}/config"): {
            **admin,
            "summary": "The published config",
            "ok": ("200", _ref("PluginConfig")),
        },
        ("post", "/v1/plugins/{plugin_id}/keys"): {
            **admin,
            "summary": "Create a dashboard key for the plugin",
            "body": _json_body(
                {"type": "object", "properties": {"label": {"type": "string"}}}, required=False
            ),
            "ok": ("201", _ref("Key")),
        },
        ("get", "/v1/plugins/{plugin_id}/columns"): {
            **reads,
            "summary": "Dashboard columns",
            "query": [_query("lang", "Language of the names (falls back to en)")],
            "ok": ("200", _ref("Columns")),
        },
        ("get", "/v1/plugins/{plugin_id}/rows"): {
            **reads,
            "summary": "A page of dashboard rows",
            "query": [
                _query("limit", "Users per page", {"type": "integer", "minimum": 1, "maximum": 200}),
                _query("cursor", "next_cursor of the previous page"),
                aggregation,
            ],
            "ok": ("200", _ref("Rows")),
        },
        ("get", "/v1/plugins/{plugin_id}/users/{user_id}"): {
            **reads,
            "summary": "One user's row",
            "query": [aggregation],
            "ok": ("200", _ref("Row")),
        },
        ("get", "/v1/plugins/{plugin_id}/export.csv"): {
            **reads,
            "summary": "Every row as CSV (RFC 4180)",
            "query": [
                _query("lang", "Language of the header"),
                _query("cursor", "X-Next-Cursor of a previous part"),
                aggregation,
            ],
            "ok": ("200", "csv"),
        },
        ("get", "/api/analytics/summary"): {
            **reads,
            "summary": "Chatbot summary: counts, funnel, A/B groups, revenue in EUR",
            "query": [
                _query("chatbot_id", "The chatbot (plugin)", required=True),
                _query("from", "First day (UTC)", {"type": "string", "format": "date"}),
                _query("to", "Last day (UTC)", {"type": "string", "format": "date"}),
            ],
            "ok": ("200", _ref("Summary")),
        },
        ("get", "/dashboard"): {
            "tags": ["dashboard"],
            "security": [],
            "summary": "The dashboard page",
            "ok": ("200", "html"),
        },
        ("get", "/openapi.json"): {
            "tags": ["health"],
            "security": [],
            "summary": "This document",
            "ok": ("200", "any"),
        },
    }


def build() -> dict[str, Any]:
    documents = [
        create_ingest_app(cast(Any, None))
        .get_openapi_schema(title="x", version="x")
        .model_dump(mode="json", by_alias=True, exclude_none=True),
        create_query_app(cast(Any, None), cast(Any, None), cast(Any, None))
        .get_openapi_schema(title="x", version="x")
        .model_dump(mode="json", by_alias=True, exclude_none=True),
    ]
    paths: dict[str, Any] = {}
    for document in documents:
        for path, methods in document["paths"].items():
            paths.setdefault(path, {}).update(methods)
    specs = operations()
    for path, methods in paths.items():
        for method, operation in methods.items():
            spec = specs.get((method, path))
            if spec is None:
                raise SystemExit(
                    f"no OpenAPI description for {method.upper()} {path}: add it to devstack/openapi.py"
                )
            operation["summary"] = spec["summary"]
            operation["tags"] = spec["tags"]
            operation["security"] = spec["security"]
            operation["parameters"] = [
                p for p in operation.get("parameters", []) if p.get("in") == "path"
            ] + spec.get("query", [])
            for parameter in operation["parameters"]:
                parameter["schema"].pop("title", None)
            if "body" in spec:
                operation["requestBody"] = spec["body"]
            status, schema = spec.get("ok", ("200", _ref("Success")))
            content: dict[str, Any] | None
            if schema is None:
                content = None
            elif schema == "csv":
                content = {"text/csv": {"schema": {"type": "string"}}}
            elif schema == "html":
                content = {"text/html": {"schema": {"type": "string"}}}
            elif schema == "any":
                content = {"application/json": {"schema": {"type": "object"}}}
            else:
                content = {"application/json": {"schema": schema}}
            responses: dict[str, Any] = {status: {"description": "Success"}}
            if content:
                responses[status]["content"] = content
            for code, description in ERRORS.items():
                responses[code] = {
                    "description": description,
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            operation["responses"] = responses
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Event tracking API",
            "version": __version__,
            "description": "Ingest (widget, plugin and Segment-spec dialects), plugin configs, dashboards.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(SCHEMAS.items())),
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
