"""Guards every route shares: size before parsing, strict JSON, the contract's error shape."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.helpers import api_event
from tracking.api_errors import BadRequest, PayloadTooLarge, ValidationFailed, validation_details
from tracking.http import new_resolver, read_body
from tracking.payloads import parse_json, parse_json_object


def resolver_with_body(event: dict[str, Any]):  # type: ignore[no-untyped-def]
    app = new_resolver()
    seen: dict[str, Any] = {}

    @app.post("/api/analytics/track")
    def route() -> dict[str, Any]:
        seen["body"] = read_body(app, 50_000)
        return {"ok": True}

    return app, seen


def test_a_body_of_50000_bytes_is_read() -> None:
    event = api_event("POST", "/api/analytics/track", raw=b'"' + b"x" * 49_998 + b'"')
    app, seen = resolver_with_body(event)
    assert app.resolve(event, {})["statusCode"] == 200
    assert len(seen["body"]) == 50_000


def test_a_body_of_50001_bytes_is_refused_before_parsing() -> None:
    # Not even JSON: had it been parsed, the answer would be ANALYTICS_001.
    event = api_event("POST", "/api/analytics/track", raw=b"{" * 50_001)
    app, seen = resolver_with_body(event)
    answer = app.resolve(event, {})
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == "ANALYTICS_002"
    assert "body" not in seen


def test_multibyte_characters_count_as_bytes() -> None:
    event = api_event("POST", "/api/analytics/track", raw=("é" * 25_001).encode())  # 50,002 bytes
    app, _ = resolver_with_body(event)
    assert json.loads(app.resolve(event, {})["body"])["error"]["code"] == "ANALYTICS_002"


def test_a_base64_body_is_decoded_and_measured() -> None:
    event = api_event("POST", "/api/analytics/track", raw=b"{}")
    event.update(body=base64.b64encode(b"\xff" * 50_001).decode(), isBase64Encoded=True)
    app, _ = resolver_with_body(event)
    assert json.loads(app.resolve(event, {})["body"])["error"]["code"] == "ANALYTICS_002"
    event.update(body=base64.b64encode(b"\xff\xfe").decode())
    assert json.loads(app.resolve(event, {})["body"])["error"]["code"] == "ANALYTICS_001"


@pytest.mark.parametrize(
    "text", ["{", "[" * 100_000, "\udcff", '{"a": "\\ud800"}', '{"\\udc00": 1}', '["a\\u0000"]']
)
def test_malformed_json_and_unsafe_text_is_a_bad_request(text: str) -> None:
    with pytest.raises(BadRequest) as exc:
        parse_json(text)
    assert exc.value.code == "ANALYTICS_001"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("NaN", "body"),
        ('{"a": Infinity}', "a"),
        ('{"a": {"b": [1, -Infinity]}}', "a.b[1]"),
        ('{"value": 1e-131}', "value"),
        ('{"price": 123456789012345678901234567890123456789}', "price"),
        ('{"big": 1e126}', "big"),
    ],
)
def test_numbers_no_table_can_hold_are_422_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(ValidationFailed) as exc:
        parse_json(text)
    assert [d["field"] for d in exc.value.details] == [field]


def test_numbers_a_table_can_hold_are_read() -> None:
    assert parse_json('{"a": [0, -0.0, 1e-130, 9.99e125, 12345678901234567890123456789012345678, 1e40]}')


def test_a_json_value_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        parse_json_object("[1, 2]")


def test_unknown_route_is_the_contracts_404() -> None:
    app = new_resolver()
    answer = app.resolve(api_event("GET", "/health"), {})
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"]) == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "No route GET /health"},
    }


def test_validation_details_name_fields_as_the_client_wrote_them() -> None:
    errors = [
        {"loc": ("data", "items", 3, "currency"), "msg": "String should have at most 3 characters"},
        {"loc": ("value", "function-after[_check]"), "msg": "Value error, must be a number"},
    ]
    assert validation_details(errors, "events[2]") == [
        {"field": "events[2].data.items[3].currency", "message": "String should have at most 3 characters"},
        {"field": "events[2].value", "message": "must be a number"},
    ]


def test_error_body_has_the_contract_shape() -> None:
    error = ValidationFailed("The payload failed validation", [{"field": "token", "message": "bad"}])
    assert error.body() == {
        "success": False,
        "error": {
            "code": "VALIDATION",
            "message": "The payload failed validation",
            "details": [{"field": "token", "message": "bad"}],
        },
    }
    assert (error.status, PayloadTooLarge("x").status, PayloadTooLarge("x").code) == (
        422,
        400,
        "ANALYTICS_002",
    )
