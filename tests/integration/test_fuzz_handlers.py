"""Hypothesis straight into the handlers (on moto): the three dialects and the read routes, with
valid and hostile input (wrong types, huge strings, deep nesting, lone surrogates, invalid UTF-8,
bad base64, odd headers). Never a 500; every error in the contract's shape; a 200 is a success."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event, assert_contract_error
from tests.integration.conftest import Invoke, new_container
from tracking.api_errors import CLIENT_ERROR_CODES
from tracking.keys import SEP

CONFIG = {
    "tracking": {
        "events": [
            {
                "key": "emoji",
                "name": {"en": "Emoji"},
                "aggregations": ["group_array"],
                "value_type": "string",
            },
            {"key": "score", "name": {"en": "Score"}, "aggregations": ["average"], "value_type": "number"},
            {"key": "link", "name": {"en": "Link"}, "aggregations": ["string"], "value_type": "url"},
        ]
    },
    "write_keys": ["wk_fuzz_key_001"],
    "allowed_origins": ["https://app.example.com"],
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)

hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(min_size=2_000, max_size=6_000),
    st.sampled_from(
        ["", "\x00", "\ud800", "\udfff", "😍" * 300, "%", "../../etc", f"a{SEP}b", "null", " ", "\u202e"]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**40, max_value=10**60),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(hostile_text, inner, max_size=5),
    max_leaves=25,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The field's plausible value, a hostile one, or none at all."""
    return st.one_of(value, json_values)


widget_payloads = st.fixed_dictionaries(
    {},
    optional={
        "event": maybe(st.sampled_from(["visitor", "purchase", "tracktrans", "added_to_cart", "nope"])),
        "token": maybe(st.sampled_from(["user_abc123def450", "short", "user_abc123def451"])),
        "ab_test": maybe(st.booleans()),
        "data": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "chatbot_id": maybe(st.sampled_from(["bot-1", "fuzz-plugin"])),
                    "orderNum": maybe(st.sampled_from(["ORD-1", "ORD-2"])),
                    "open_way": maybe(st.sampled_from(["popup", "chat_button"])),
                    "url": hostile_text,
                    "user_agent": hostile_text,
                    "items": maybe(
                        st.lists(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "item_id": maybe(st.just("SKU-1")),
                                    "id": json_values,
                                    "value": maybe(st.floats(min_value=-1e6, max_value=1e6)),
                                    "price": json_values,
                                    "quantity": maybe(st.integers(min_value=-2, max_value=5)),
                                    "currency": maybe(st.sampled_from(["EUR", "USD", "XYZ", "usd"])),
                                },
                            ),
                            max_size=60,
                        )
                    ),
                },
            )
        ),
    },
)
plugin_calls = st.fixed_dictionaries(
    {},
    optional={
        "key": maybe(st.sampled_from(["emoji", "score", "link", "undeclared"])),
        "value": json_values,
        "user_id": maybe(st.sampled_from(["participant-1", "p 2"])),
    },
)
plugin_payloads = st.one_of(
    plugin_calls,
    st.fixed_dictionaries(
        {"events": st.one_of(st.lists(plugin_calls, max_size=110), json_values)},
        optional={"user_id": json_values},
    ),
)
segment_calls = st.fixed_dictionaries(
    {},
    optional={
        "type": maybe(st.sampled_from(["track", "identify", "page", "screen", "alias", "group"])),
        "event": maybe(st.sampled_from(["Order Completed", "Product Added", "emoji"])),
        "userId": json_values,
        "anonymousId": maybe(st.just("anon-1")),
        "messageId": json_values,
        "properties": json_values,
        "traits": json_values,
        "context": json_values,
        "timestamp": maybe(st.sampled_from(["2025-11-24T20:00:00Z", "not a date", "99999-01-01"])),
        "sentAt": json_values,
        "originalTimestamp": json_values,
        "writeKey": maybe(st.just("wk_fuzz_key_001")),
    },
)
segment_payloads = st.one_of(
    segment_calls,
    st.fixed_dictionaries(
        {"batch": st.one_of(st.lists(segment_calls, max_size=30), json_values)},
        optional={"sentAt": json_values, "context": json_values},
    ),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Origin": st.one_of(st.just("https://app.example.com"), hostile_text),
        "Authorization": st.one_of(
            st.just("Basic " + base64.b64encode(b"wk_fuzz_key_001:").decode()),
            st.just("Basic !!!"),
            st.just("Bearer x"),
            hostile_text.map(
                lambda t: "Basic " + base64.b64encode(t.encode("utf-8", "surrogatepass")).decode()
            ),
        ),
        "Content-Type": st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
        ),
        "User-Agent": hostile_text,
        "x-api-key": st.one_of(st.just(SAMPLE_ADMIN_KEY), hostile_text),
    },
)


def raw_bodies(payloads: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[bytes, bool]]:
    """JSON of the payload, or something that is not: deep nesting, invalid UTF-8, bad base64."""
    as_json = payloads.map(lambda p: (json.dumps(p).encode(), False))
    return st.one_of(
        as_json,
        as_json,
        as_json,
        st.integers(min_value=1, max_value=60_000).map(lambda depth: (b"[" * depth + b"]" * depth, False)),
        st.binary(max_size=300).map(lambda b: (base64.b64encode(b), True)),
        st.just((b"!!!not base64!!!", True)),
        st.binary(max_size=200).map(lambda b: (b, False)),
    )


def event_with(
    method: str, path: str, body: bytes, encoded: bool, extra: dict[str, str], ip: str
) -> dict[str, Any]:
    event = api_event(method, path, headers=extra, ip=ip, raw=b"")
    event["body"] = body.decode("latin-1") if not encoded else body.decode("ascii")
    event["isBase64Encoded"] = encoded
    return event


def check(answer: dict[str, Any]) -> None:
    status = answer["statusCode"]
    assert status != 500, answer.get("body")
    assert status in (200, 201, 204, 400, 401, 403, 404, 422, 429), answer.get("body")
    if status >= 400:
        # Storage is healthy here: a 503 would be a defect too.
        assert_contract_error(json.loads(answer["body"]), set(CLIENT_ERROR_CODES) - {"UNAVAILABLE"})
    elif status == 200 and "body" in answer and answer["body"].startswith('{"success"'):
        assert json.loads(answer["body"])["success"] is True


@pytest.fixture
def functions(function_env: Callable[..., None], aws: Any) -> tuple[Invoke, Invoke]:
    function_env(RATE_LIMIT_PER_MINUTE="0", CONFIG_CACHE_SECONDS="0")
    query = new_container("QueryFunction")
    assert (
        query(
            api_event(
                "PUT", "/v1/plugins/fuzz-plugin/config", CONFIG, headers={"x-api-key": SAMPLE_ADMIN_KEY}
            )
        )["statusCode"]
        == 200
    )
    return new_container("IngestFunction"), query


@FUZZ
@given(data=st.data())
def test_widget_calls(functions: tuple[Invoke, Invoke], data: st.DataObject) -> None:
    ingest, _ = functions
    path = data.draw(st.sampled_from(["/api/analytics/track", "/api/events/track", "/api/save"]))
    body, encoded = data.draw(raw_bodies(widget_payloads))
    check(ingest(event_with("POST", path, body, encoded, data.draw(headers), "198.51.100.9")))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["e", "u", "d", "x"]), hostile_text | json_values.map(json.dumps), max_size=4
    ),
    extra=headers,
)
def test_legacy_get_calls(
    functions: tuple[Invoke, Invoke], params: dict[str, str], extra: dict[str, str]
) -> None:
    ingest, _ = functions
    event = api_event("GET", "/api/analytics/track", headers=extra)
    event["queryStringParameters"] = params or None
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()} or None
    check(ingest(event))


@FUZZ
@given(data=st.data())
def test_plugin_calls(functions: tuple[Invoke, Invoke], data: st.DataObject) -> None:
    ingest, _ = functions
    plugin = data.draw(st.sampled_from(["fuzz-plugin", "unknown", "a%20b", "%ZZ", "x" * 600]))
    body, encoded = data.draw(raw_bodies(plugin_payloads))
    method = data.draw(st.sampled_from(["POST", "POST", "OPTIONS"]))
    check(
        ingest(
            event_with(
                method, f"/v1/plugins/{plugin}/track", body, encoded, data.draw(headers), "198.51.100.10"
            )
        )
    )


@FUZZ
@given(data=st.data())
def test_segment_calls(functions: tuple[Invoke, Invoke], data: st.DataObject) -> None:
    ingest, _ = functions
    path = data.draw(st.sampled_from(["/v1/track", "/v1/identify", "/v1/batch"]))
    body, encoded = data.draw(raw_bodies(segment_payloads))
    check(ingest(event_with("POST", path, body, encoded, data.draw(headers), "198.51.100.11")))


@FUZZ
@given(data=st.data())
def test_config_and_read_routes(functions: tuple[Invoke, Invoke], data: st.DataObject) -> None:
    _, query = functions
    plugin = data.draw(st.sampled_from(["fuzz-plugin", "other", "%FF", f"a{SEP}b"]))
    route = data.draw(
        st.sampled_from(
            [
                ("PUT", f"/v1/plugins/{plugin}/config"),
                ("POST", f"/v1/plugins/{plugin}/keys"),
                ("GET", f"/v1/plugins/{plugin}/columns"),
                ("GET", f"/v1/plugins/{plugin}/rows"),
                ("GET", f"/v1/plugins/{plugin}/users/u%E2%80%AE"),
                ("GET", f"/v1/plugins/{plugin}/export.csv"),
                ("GET", "/api/analytics/summary"),
            ]
        )
    )
    body, encoded = data.draw(raw_bodies(st.one_of(st.just(CONFIG), json_values)))
    event = event_with(route[0], route[1], body, encoded, data.draw(headers), "198.51.100.12")
    params = data.draw(
        st.dictionaries(
            st.sampled_from(["limit", "cursor", "lang", "aggregation.emoji", "chatbot_id", "from", "to"]),
            hostile_text,
            max_size=4,
        )
    )
    event["queryStringParameters"] = params or None
    check(query(event))
