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
