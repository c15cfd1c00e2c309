"""Every error the deployed stack answers before a function runs (API Gateway's gateway responses and
the WAF's custom bodies) is JSON in the contract's error shape, whatever the values API Gateway puts
into its template. Rendered here as API Gateway renders them: ``$context`` variables replaced by
their values (``messageString`` is already a quoted JSON string, by AWS's definition)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.local.template import Template, load_template

DOCUMENT = load_template()
API = DOCUMENT["Resources"]["TrackingApi"]["Properties"]
RESPONSES = API["GatewayResponses"]
WAF_BODIES = DOCUMENT["Resources"]["ApiWebAcl"]["Properties"]["CustomResponseBodies"]
# Values a client can steer into the variables: quotes, backslashes, control characters, braces.
HOSTILE_MESSAGE = "Invalid key=value pair (missing equal-sign) in Authorization header: '\"\\\n{}'"
CONTEXT = {
    "$context.error.messageString": json.dumps(HOSTILE_MESSAGE),
    "$context.error.message": HOSTILE_MESSAGE,
    "$context.httpMethod": "DELETE",
    "$context.requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
}


def rendered(name: str) -> Any:
    return json.loads(Template.load().gateway_response(name, CONTEXT).body)


def assert_contract_error(body: Any) -> None:
    assert body["success"] is False
    assert isinstance(body["error"]["code"], str)
    assert body["error"]["code"]
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    # Segment's libraries read the top-level fields of any error (the gateway's own included).
    assert (body["code"], body["message"]) == (body["error"]["code"], body["error"]["message"])


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_each_gateway_response_renders_as_a_contract_error(name: str) -> None:
    templates = RESPONSES[name]["ResponseTemplates"]
    assert set(templates) == {"application/json"}
    assert_contract_error(rendered(name))


def test_the_default_4xx_carries_the_gateways_own_message() -> None:
    body = rendered("DEFAULT_4XX")
    assert body["error"]["message"] == HOSTILE_MESSAGE


@pytest.mark.parametrize("name", sorted(WAF_BODIES))
def test_each_waf_body_is_a_contract_error(name: str) -> None:
    assert WAF_BODIES[name]["ContentType"] == "APPLICATION_JSON"
    assert_contract_error(json.loads(WAF_BODIES[name]["Content"]))


def test_the_waf_limits_browsers_per_ip_and_sources_per_write_key() -> None:
    """A server's Segment source sends every call from one IP: the WAF's per-IP limit (the widget's
    120 a minute) leaves out requests with an Authorization header, which are limited per header
    (per write key) instead, so one server is not capped at 120 batches a minute."""
    rules = {rule["Name"]: rule for rule in DOCUMENT["Resources"]["ApiWebAcl"]["Properties"]["Rules"]}
    has_authorization = {
        "SizeConstraintStatement": {
            "FieldToMatch": {"SingleHeader": {"Name": "authorization"}},
            "ComparisonOperator": "GT",
            "Size": 0,
            "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
        }
    }
    per_ip = rules["PerIpRateLimit"]["Statement"]["RateBasedStatement"]
    assert per_ip["AggregateKeyType"] == "IP"
    assert per_ip["ScopeDownStatement"] == {"NotStatement": {"Statement": has_authorization}}
    per_key = rules["PerWriteKeyRateLimit"]["Statement"]["RateBasedStatement"]
    assert per_key["CustomKeys"] == [
        {"Header": {"Name": "authorization", "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}
    ]
    assert per_key["ScopeDownStatement"] == has_authorization
    assert len({rule["Priority"] for rule in rules.values()}) == len(rules)
    parameters = DOCUMENT["Parameters"]
    assert parameters["WafRateLimitPerWriteKey"]["Default"] >= 60_000  # 1,000 batches a second
    assert parameters["ApiThrottleRate"]["Default"] >= 10_000  # 10k widget calls a second
    body = json.loads(
        WAF_BODIES[
            rules["PerWriteKeyRateLimit"]["Action"]["Block"]["CustomResponse"]["CustomResponseBodyKey"]
        ]["Content"]
    )
    assert_contract_error(body)
    assert body["code"] == "RATE_LIMITED"
