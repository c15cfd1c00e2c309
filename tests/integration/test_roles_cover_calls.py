"""Each function's role in template.yaml allows every DynamoDB call its code makes. Least privilege
is checked elsewhere (devstack/checks/policies.py); this is the other side: a call the role does not allow
works on moto and DynamoDB Local and fails only once deployed. Every function runs a scenario that
reaches its code paths (each dialect, batches with refusals, links refused and held, a suppression and
the calls after it, a chatbot without a config, every read route, a deletion to its end), and every
call it made is matched against its role's statements, transactions and batches item by item."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.local.template import load_template
from tests.conftest import SAMPLE_ADMIN_KEY, sample_event
from tests.helpers import api_event
from tests.integration.conftest import Invoke, Stream, body, new_container
from tracking.storage.dynamo import client

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}
DOCUMENT = load_template()
TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def resource_table(resource: Any) -> str | None:
    """The table a statement's resource names (``!GetAtt EventsTable.Arn``), if it names one."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource:
        name, attribute = resource["Fn::GetAtt"]
        if attribute == "Arn" and DOCUMENT["Resources"][name]["Type"] == "AWS::DynamoDB::Table":
            return str(name)
    return None


def statements(listed: list[Any]) -> Iterator[dict[str, Any]]:
    """A policy's statements, both branches of a conditional one (``!If``) included."""
    for statement in listed:
        if "Fn::If" in statement:
            yield from statements([branch for branch in statement["Fn::If"][1:] if isinstance(branch, dict)])
        elif "Action" in statement:
            yield statement


def allowed(function: str) -> set[tuple[str, str]]:
    """(action, table) pairs the function's role allows."""
    role = DOCUMENT["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    pairs = set()
    for policy in DOCUMENT["Resources"][role]["Properties"]["Policies"]:
        for statement in statements(policy["PolicyDocument"]["Statement"]):
            action = statement.get("Action", [])
            actions = action if isinstance(action, list) else [action]
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for resource in resources:
                table = resource_table(resource)
                if table is not None and statement.get("Effect") == "Allow":
                    pairs |= {(action.removeprefix("dynamodb:"), table) for action in actions}
    return pairs


def needed(operation: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """The (action, table) pairs one call needs: a transaction or a batch needs each of its items'."""
    if operation == "TransactWriteItems":
        return {
            (TRANSACT[kind], item[kind]["TableName"]) for item in params["TransactItems"] for kind in item
        }
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return {(operation, table) for table in params["RequestItems"]}
    if operation == "TransactGetItems":
        return {("GetItem", item["Get"]["TableName"]) for item in params["TransactItems"]}
    return {(operation, params["TableName"])}


class Calls:
    """Every DynamoDB call made while a function runs, by function."""

    def __init__(self) -> None:
        self.running = ""
        self.made: dict[str, set[tuple[str, str]]] = {}

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.running:
            self.made.setdefault(self.running, set()).update(needed(model.name, params))

    def wrap(self, function: str, invoke: Invoke) -> Invoke:
        def run(event: dict[str, Any]) -> dict[str, Any]:
            self.running = function
            try:
                return invoke(event)
            finally:
                self.running = ""

        return run


@pytest.fixture
def calls(aws: Any) -> Iterator[Calls]:
    recorder = Calls()
    client().meta.events.register("before-parameter-build.dynamodb.*", recorder.record)
    yield recorder
    client().meta.events.unregister("before-parameter-build.dynamodb.*", recorder.record)


def test_every_call_of_every_function_is_allowed_by_its_role(
    aws: Any, calls: Calls, function_env: Callable[..., None]
) -> None:
    function_env(CONFIG_CACHE_SECONDS="0")
    ingest = calls.wrap("IngestFunction", new_container("IngestFunction"))
    query = calls.wrap("QueryFunction", new_container("QueryFunction"))
    aggregate = calls.wrap("AggregateFunction", new_container("AggregateFunction"))
    forget = calls.wrap("ForgetFunction", new_container("ForgetFunction"))
    stream = Stream(aws, aggregate, forget)

    def admin(method: str, path: str, payload: Any = None, **query_params: str) -> dict[str, Any]:
        answer = query(api_event(method, path, payload, headers=ADMIN, query=query_params or None))
        assert answer["statusCode"] < 500, answer
        return answer

    admin("PUT", "/v1/plugins/demo-plugin/config", json.loads(sample_event("config-put")["body"]))
    key = body(admin("POST", "/v1/plugins/demo-plugin/keys", {"label": "reader"}))
    # Ingest: each dialect, a batch with a refusal, a refused plugin call, the legacy GET
    widget = {"event": "visitor", "token": "user_abc123def450", "data": {"chatbot_id": "lone-bot"}}
    assert ingest(api_event("POST", "/api/analytics/track", widget))["statusCode"] == 200
    purchase = {
        "event": "purchase",
        "token": "user_abc123def451",
        "data": {"orderNum": "o-1", "items": [{"price": 2}]},
    }
    assert ingest(api_event("POST", "/api/analytics/track", purchase))["statusCode"] == 200
    get = {"e": "visitor", "u": "user_abc123def452", "d": '{"chatbot_id": "lone-bot"}'}
    assert ingest(api_event("GET", "/api/analytics/track", query=get))["statusCode"] == 200
    plugin = {
        "events": [
            {"key": "rating", "value": 4, "user_id": "p-1"},
            {"key": "rating", "value": 5, "user_id": "p-1"},
        ]
    }
    assert ingest(api_event("POST", "/v1/plugins/demo-plugin/track", plugin))["statusCode"] == 200
    assert (
        ingest(api_event("POST", "/v1/plugins/demo-plugin/track", {"key": "nope", "user_id": "p"}))[
            "statusCode"
        ]
        == 422
    )
    segment_batch = [
        {
            "type": "track",
            "event": "rating",
            "anonymousId": "anon-1",
            "properties": {"value": 3},
            "messageId": "m1",
        },
        {"type": "identify", "userId": "u-1", "anonymousId": "anon-1", "traits": {"plan": "pro"}},
        {"type": "group", "userId": "u-1", "groupId": "g-1", "traits": {"name": "G"}},
        {"type": "alias", "previousId": "p-1", "userId": "u-1"},  # refused: p-1 has been a user
        {"type": "identify", "userId": "attacker", "anonymousId": "u-1"},  # refused: a user
        {"type": "track", "event": "x" * 300, "userId": "u-1"},  # refused at ingest
        {"type": "track", "event": "visitor", "userId": "u-1", "timestamp": "2025-11-20T10:00:00Z"},
    ]
    assert (
        ingest(api_event("POST", "/v1/batch", {"batch": segment_batch}, headers=BASIC))["statusCode"] == 200
    )
    assert ingest(api_event("POST", "/v1/m", {"series": []}))["statusCode"] == 200
    # A profile past 60 KB (kept in parts, read and written in transactions), then changed
    traits = {f"{n:03d}" + "n" * 253: "v" * 600 for n in range(100)}
    names = sorted(traits)
    large = [
        {
            "type": "identify",
            "userId": "big",
            "traits": {name: traits[name] for name in names[start : start + 25]},
        }
        for start in range(0, 100, 25)
    ]
    assert ingest(api_event("POST", "/v1/batch", {"batch": large}, headers=BASIC))["statusCode"] == 200
    stream.aggregate()
    change = {"type": "identify", "userId": "big", "traits": {names[-1]: "changed"}}
    assert ingest(api_event("POST", "/v1/identify", change, headers=BASIC))["statusCode"] == 200
    stream.aggregate()
    admin("GET", "/v1/plugins/demo-plugin/users/big")
    admin("DELETE", "/v1/plugins/demo-plugin/users/big")
    # A deletion with suppression, calls after it (removed by the aggregator), the deletion's end
    admin("DELETE", "/v1/plugins/demo-plugin/users/u-1")
    late = {"event": "rating", "userId": "u-1", "messageId": "late", "properties": {"value": 1}}
    assert ingest(api_event("POST", "/v1/track", late, headers=BASIC))["statusCode"] == 200
    stream.aggregate()
    stream.forget_all()
    admin("DELETE", "/v1/plugins/demo-plugin/suppressions/u-1")
    # Every read and admin route, with the admin key and a dashboard key
    reader = {"x-api-key": key["key"]}
    for path, params in [
        ("/v1/plugins", {}),
        ("/v1/plugins/demo-plugin/config", {}),
        ("/v1/plugins/demo-plugin/keys", {}),
        ("/v1/plugins/demo-plugin/columns", {}),
        ("/v1/plugins/demo-plugin/rows", {}),
        ("/v1/plugins/demo-plugin/users/p-1", {}),
        ("/v1/plugins/demo-plugin/users/p-1/events", {}),
        ("/v1/plugins/demo-plugin/export.csv", {}),
        ("/v1/plugins/demo-plugin/rejections", {}),
        ("/v1/plugins/demo-plugin/series", {"keys": "rating"}),
        ("/api/analytics/summary", {"chatbot_id": "demo-plugin"}),
        ("/v1/plugins/lone-bot/rows", {}),
    ]:
        admin("GET", path, **params)
    assert query(api_event("GET", "/v1/plugins/demo-plugin/rows", headers=reader))["statusCode"] == 200
    admin("DELETE", f"/v1/plugins/demo-plugin/keys/{key['key_id']}")
    # Then every call each function made is one its role allows
    assert set(calls.made) == {"IngestFunction", "QueryFunction", "AggregateFunction", "ForgetFunction"}
    missing = {function: sorted(made - allowed(function)) for function, made in calls.made.items()}
    assert {function: gaps for function, gaps in missing.items() if gaps} == {}
