"""The dashboard routes on moto: columns, rows, CSV, summary, and who may read them."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event, key_order
from tests.integration.conftest import Invoke, aggregate_stored_events, body, new_container
from tests.integration.faults import dynamodb_fails
from tests.streams import canonical, invocation, stream_record
from tracking.keys import user_suffix
from tracking.models.aggregates import AggregateState
from tracking.storage.aggregate_items import aggregate_to_item
from tracking.storage.aggregates import AggregateStore
from tracking.storage.dynamo import client

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
CONFIG = {
    "tracking": {
        "events": [
            {
                "key": "emoji",
                "name": {"en": "Emoji reactions", "fr": "Réactions"},
                "aggregations": ["group_array", "increment"],
                "value_type": "string",
            },
            {
                "key": "handouts",
                "name": {"en": "Handouts"},
                "aggregations": ["array", "increment"],
                "value_type": "string",
            },
            {
                "key": "photo",
                "name": {"en": "Photo", "fr": "Photo"},
                "aggregations": ["string"],
                "value_type": "image",
            },
        ]
    }
}


def get(query: Invoke, path: str, headers: dict[str, str] | None = None, **params: str) -> dict[str, Any]:
    event = api_event("GET", path, headers=ADMIN if headers is None else headers, query=params or None)
    return query(event)


@pytest.fixture
def plugin(query: Invoke, aggregate: Invoke) -> None:
    """plugin p1 with five users, aggregated."""
    assert query(api_event("PUT", "/v1/plugins/p1/config", CONFIG, headers=ADMIN))["statusCode"] == 200
    events = []
    for n, user in enumerate(["ann", "bob", "cat", "dan", "eve"]):
        events += [
            canonical("emoji", "😍", user=user, event_id=f"g:{n}a"),
            canonical("handouts", f'doc {n}, "v2"', user=user, event_id=f"g:{n}b"),
        ]
    events.append(canonical("undeclared", user="ann", event_id="g:x"))
    aggregate(invocation("s1", [stream_record(i + 1, e) for i, e in enumerate(events)]))


def test_columns_in_the_asked_language_falling_back_to_english(query: Invoke, plugin: None) -> None:
    french = body(get(query, "/v1/plugins/p1/columns", lang="fr"))["columns"]
    assert [c["name"] for c in french] == ["Réactions", "Handouts", "Photo"]
    assert french[0] == {
        "key": "emoji",
        "name": "Réactions",
        "aggregation": "group_array",
        "aggregations": ["group_array", "increment"],
        "value_type": "string",
    }
    assert [c["name"] for c in body(get(query, "/v1/plugins/p1/columns", lang="de"))["columns"]] == [
        "Emoji reactions",
        "Handouts",
        "Photo",
    ]


def test_rows_page_through_users_without_duplicates_or_gaps(query: Invoke, plugin: None) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = body(get(query, "/v1/plugins/p1/rows", **params))
        seen += [row["user_id"] for row in page["rows"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == key_order(["ann", "bob", "cat", "dan", "eve"])
    assert pages == 3
    first = body(get(query, "/v1/plugins/p1/rows", limit="1"))["rows"][0]
    assert first["values"]["emoji"] == {"value": {"total": 1, "counts": {"😍": 1}}, "display": "1 (😍 1)"}
    assert "undeclared" not in first["values"]


def test_a_page_of_rows_reads_the_suffixes_once_and_each_suffix_at_most_once(
    query: Invoke, plugin: None
) -> None:
    queried: Counter[str] = Counter()
    reads: Counter[str] = Counter()

    def count_query(params: dict[str, Any], **_: Any) -> None:
        if params["TableName"] == "AggregatesTable":
            queried[params["ExpressionAttributeValues"][":pk"]["S"]] += 1

    def count_get(params: dict[str, Any], **_: Any) -> None:
        reads[params["TableName"]] += 1

    client().meta.events.register("before-parameter-build.dynamodb.Query", count_query)
    client().meta.events.register("before-parameter-build.dynamodb.GetItem", count_get)
    try:
        assert len(body(get(query, "/v1/plugins/p1/rows", limit="3"))["rows"]) == 3
    finally:
        client().meta.events.unregister("before-parameter-build.dynamodb.Query", count_query)
        client().meta.events.unregister("before-parameter-build.dynamodb.GetItem", count_get)
    assert reads["AggregatesTable"] == 1  # the plugin's suffixes item
    # The first page's suffix 0, then the suffixes that hold users, each once: never a query per user.
    assert set(queried.values()) == {1}
    assert len(queried) <= 1 + len({user_suffix(u) for u in ["ann", "bob", "cat", "dan", "eve"]})


def test_another_listed_aggregation_can_be_picked(query: Invoke, plugin: None) -> None:
    rows = body(get(query, "/v1/plugins/p1/rows", **{"aggregation.emoji": "increment", "limit": "1"}))["rows"]
    assert rows[0]["values"]["emoji"] == {"value": 1, "display": "1"}
    bad = get(query, "/v1/plugins/p1/rows", **{"aggregation.emoji": "average"})
    assert (bad["statusCode"], body(bad)["error"]["details"][0]["field"]) == (422, "aggregation.emoji")


@pytest.mark.parametrize(
    ("params", "field"), [({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"cursor": "!!"}, "cursor")]
)
def test_bad_paging_parameters_are_422(
    query: Invoke, plugin: None, params: dict[str, str], field: str
) -> None:
    answer = get(query, "/v1/plugins/p1/rows", **params)
    assert (answer["statusCode"], body(answer)["error"]["details"][0]["field"]) == (422, field)


def test_csv_has_one_row_per_user_and_quotes_as_rfc_4180(query: Invoke, plugin: None) -> None:
    answer = get(query, "/v1/plugins/p1/export.csv", lang="fr")
    assert answer["statusCode"] == 200
    assert answer["multiValueHeaders"]["Content-Type"] == ["text/csv; charset=utf-8"]
    text = answer["body"]
    assert text.startswith("\ufeffuser_id,Réactions,Handouts,Photo\r\n")
    table = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [row[0] for row in table[1:]] == key_order(["ann", "bob", "cat", "dan", "eve"])
    assert next(row for row in table if row[0] == "ann")[1:] == ["1 (😍 1)", 'doc 0, "v2"', ""]
    assert '"doc 0, ""v2"""' in text


def test_csv_defuses_formulas_in_tracked_values(query: Invoke, aggregate: Invoke, plugin: None) -> None:
    aggregate(
        invocation(
            "s2",
            [stream_record(1, canonical("handouts", '=HYPERLINK("http://x")', user="zed", event_id="g:z"))],
        )
    )
    table = list(csv.reader(io.StringIO(body_text(get(query, "/v1/plugins/p1/export.csv")))))
    assert next(row for row in table if row[0] == "zed")[2] == '\'=HYPERLINK("http://x")'


def body_text(answer: dict[str, Any]) -> str:
    return str(answer["body"]).removeprefix("\ufeff")


def test_csv_works_for_thousands_of_users(query: Invoke, aws: Any) -> None:
    assert query(api_event("PUT", "/v1/plugins/big/config", CONFIG, headers=ADMIN))["statusCode"] == 200
    # Aggregates as the stream function leaves them, written in bulk (the function is tested elsewhere).
    requests = []
    for n in range(3000):
        state = AggregateState(
            plugin_id="big", user_id=f"user-{n:05d}", key="emoji", version=1, count=1, counts={"👍": 1}
        )
        requests.append({"PutRequest": {"Item": aggregate_to_item(state)}})
    for start in range(0, len(requests), 25):
        aws.batch_write_item(RequestItems={"AggregatesTable": requests[start : start + 25]})
    AggregateStore(aws, "AggregatesTable").record_suffixes_of(r["PutRequest"]["Item"] for r in requests)
    rows = list(csv.reader(io.StringIO(body_text(get(query, "/v1/plugins/big/export.csv")))))
    assert len(rows) == 3001
    assert len({row[0] for row in rows[1:]}) == 3000
    assert rows[1][1] == "1 (👍 1)"


@pytest.fixture
def chatbot(ingest: Invoke, aggregate: Invoke, aws: Any) -> None:
    """A chatbot's visitors in two A/B groups; one USD purchase of 49.99 x 2, reported twice."""

    def widget(event: str, token: str, **data: Any) -> None:
        payload = {"event": event, "token": token, "ab_test": True, "data": {"chatbot_id": "bot", **data}}
        assert ingest(api_event("POST", "/api/analytics/track", payload))["statusCode"] == 200

    for token in ("visitor_aaaa_0", "visitor_bbbb_0", "visitor_cccc_1", "visitor_dddd_1"):
        widget("visitor", token)
    widget("bot_open", "visitor_aaaa_0")
    widget("bot_open", "visitor_cccc_1")
    widget("convo_started", "visitor_aaaa_0", open_way="popup")
    items = [{"item_id": "SKU-123", "value": 49.99, "quantity": 2, "currency": "USD"}]
    widget("purchase", "visitor_aaaa_0", orderNum="ORD-1", items=items)
    widget("purchase", "visitor_aaaa_0", orderNum="ORD-1", items=items)  # a reload of the thank-you page
    widget(
        "purchase",
        "visitor_cccc_1",
        orderNum="ORD-2",
        items=[{"item_id": "x", "value": 10, "currency": "EUR"}],
    )
    aggregate_stored_events(aws, aggregate)


def test_summary_of_a_chatbot(query: Invoke, chatbot: None) -> None:
    today = datetime.now(UTC).date().isoformat()
    summary = body(get(query, "/api/analytics/summary", chatbot_id="bot", to=today))
    assert summary["counts"] == {"bot_open": 2, "convo_started": 1, "purchase": 2, "visitor": 4}
    assert summary["revenue_eur"] == 101.98  # 49.99 x 2 x 0.92 = 91.98, once, and 10 EUR
    assert summary["ab_test"] == {
        "control": {"users": 2, "conversions": 1, "conversion_rate": 0.5, "revenue_eur": 91.98},
        "test": {"users": 2, "conversions": 1, "conversion_rate": 0.5, "revenue_eur": 10},
        # 1 of 2 each: no difference; the interval is that wide with two users a group
        "comparison": {"difference": 0.0, "ci95": [-0.98, 0.98], "p_value": 1.0},
    }
    assert summary["opted_out"] == 0
    funnel = {step["step"]: step for step in summary["funnel"]}
    assert [s["step"] for s in summary["funnel"]] == [
        "visitor",
        "bot_open",
        "convo_started",
        "message_sent",
        "added_to_cart",
        "purchase",
    ]
    assert funnel["visitor"] == {
        "step": "visitor",
        "users": 4,
        "conversion_from_previous": None,
        "conversion_overall": 1.0,
    }
    assert (funnel["bot_open"]["users"], funnel["bot_open"]["conversion_from_previous"]) == (2, 0.5)
    assert funnel["convo_started"]["conversion_from_previous"] == 0.5
    assert (funnel["message_sent"]["users"], funnel["added_to_cart"]["conversion_from_previous"]) == (0, None)
    # The funnel is ordered: the two buyers never sent a message, so they stop at convo_started.
    assert (funnel["purchase"]["users"], funnel["purchase"]["conversion_overall"]) == (0, 0.0)


def test_summary_dates(query: Invoke, chatbot: None) -> None:
    empty = body(
        get(query, "/api/analytics/summary", chatbot_id="bot", **{"from": "2020-01-01", "to": "2020-01-31"})
    )
    assert (empty["counts"], empty["revenue_eur"]) == ({}, 0)
    for params, field in [
        ({"from": "2020-13-01"}, "from"),
        ({"from": "2020-02-01", "to": "2020-01-01"}, "from"),
        ({"from": "2019-01-01", "to": "2020-06-01"}, "from"),
    ]:
        answer = get(query, "/api/analytics/summary", chatbot_id="bot", **params)
        assert (answer["statusCode"], body(answer)["error"]["details"][0]["field"]) == (422, field)
    assert get(query, "/api/analytics/summary", chatbot_id="nobody")["statusCode"] == 404


# -- keys -------------------------------------------------------------------------------------------


@pytest.fixture
def key_of_p1(query: Invoke, plugin: None) -> str:
    answer = query(api_event("POST", "/v1/plugins/p1/keys", {"label": "marketing"}, headers=ADMIN))
    assert answer["statusCode"] == 201
    created = body(answer)
    assert created["plugin_id"] == "p1"
    key: str = created["key"]
    return key


def test_a_dashboard_key_reads_its_plugin_only(query: Invoke, key_of_p1: str) -> None:
    assert query(api_event("PUT", "/v1/plugins/p2/config", CONFIG, headers=ADMIN))["statusCode"] == 200
    mine = {"x-api-key": key_of_p1}
    for path in (
        "/v1/plugins/p1/columns",
        "/v1/plugins/p1/rows",
        "/v1/plugins/p1/export.csv",
        "/v1/plugins/p1/users/ann",
    ):
        assert get(query, path, headers=mine)["statusCode"] == 200, path
    for path in ("/v1/plugins/p2/columns", "/v1/plugins/p2/rows", "/v1/plugins/p2/export.csv"):
        answer = get(query, path, headers=mine)
        assert (answer["statusCode"], body(answer)["error"]["code"]) == (403, "FORBIDDEN"), path
    assert get(query, "/api/analytics/summary", headers=mine, chatbot_id="p2")["statusCode"] == 403
    assert body(get(query, "/v1/plugins", headers=mine)) == {
        "plugins": [{"plugin_id": "p1"}],
        "next_cursor": None,
    }


def test_the_admin_key_reads_every_plugin(query: Invoke, key_of_p1: str) -> None:
    assert query(api_event("PUT", "/v1/plugins/p2/config", CONFIG, headers=ADMIN))["statusCode"] == 200
    assert get(query, "/v1/plugins/p2/columns")["statusCode"] == 200
    assert body(get(query, "/v1/plugins")) == {
        "plugins": [{"plugin_id": "p1"}, {"plugin_id": "p2"}],
        "next_cursor": None,
    }


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "dk_not-a-key-we-made"}, {"x-api-key": "whatever"}])
def test_no_key_or_an_unknown_key_is_401(query: Invoke, plugin: None, headers: dict[str, str]) -> None:
    answer = get(query, "/v1/plugins/p1/rows", headers=headers)
    assert (answer["statusCode"], body(answer)["error"]["code"]) == (401, "UNAUTHORIZED")


def test_dashboard_keys_never_manage_plugins(query: Invoke, key_of_p1: str) -> None:
    mine = {"x-api-key": key_of_p1}
    for event in (
        api_event("PUT", "/v1/plugins/p1/config", CONFIG, headers=mine),
        api_event("GET", "/v1/plugins/p1/config", headers=mine),
        api_event("POST", "/v1/plugins/p1/keys", {}, headers=mine),
    ):
        answer = query(event)
        assert (answer["statusCode"], body(answer)["error"]["code"]) == (403, "FORBIDDEN")


def test_only_a_hash_of_a_key_is_stored(query: Invoke, aws: Any, key_of_p1: str) -> None:
    stored = json.dumps(aws.scan(TableName="ControlTable")["Items"])
    assert key_of_p1 not in stored
    assert key_of_p1[3:] not in stored


def test_the_dashboard_page_and_the_openapi_document_are_served(query: Invoke) -> None:
    page = query(api_event("GET", "/dashboard"))
    assert page["statusCode"] == 200
    assert page["multiValueHeaders"]["Content-Type"] == ["text/html; charset=utf-8"]
    assert "<html" in page["body"]
    document = query(api_event("GET", "/openapi.json"))
    assert json.loads(document["body"])["openapi"].startswith("3.")


def test_money_in_the_summary_is_rounded_to_cents(query: Invoke, aggregate: Invoke) -> None:
    events = [
        canonical(
            "purchase",
            plugin="shop",
            commerce="purchase",
            total_value_base=Decimal("0.335"),
            event_id=f"g:{n}",
            user=f"u{n}",
        )
        for n in range(3)
    ]
    aggregate(invocation("s1", [stream_record(n + 1, e) for n, e in enumerate(events)]))
    assert (
        body(
            get(
                query,
                "/api/analytics/summary",
                chatbot_id="shop",
                **{"from": "2025-11-24", "to": "2025-11-24"},
            )
        )["revenue_eur"]
        == 1.0
    )


def test_a_key_that_could_not_be_stored_is_not_answered(query: Invoke, plugin: None) -> None:
    with dynamodb_fails("TransactWriteItems"):
        answer = query(api_event("POST", "/v1/plugins/p1/keys", {}, headers=ADMIN))
    assert answer["statusCode"] == 503
    assert "key" not in json.loads(answer["body"])
    assert body(query(api_event("GET", "/v1/plugins/p1/keys", headers=ADMIN)))["keys"] == []


def test_on_aws_the_admin_key_is_read_from_its_secret_and_rotates_without_a_redeploy(
    function_env: Callable[..., None], aws: Any
) -> None:
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="admin-key", SecretString="firstAdminKey0123456789abcdefghij")["ARN"]
    function_env(ADMIN_KEY_SECRET_ARN=arn)  # TRACKING_ADMIN_KEY is still set: the secret wins
    query = new_container("QueryFunction")
    first = {"x-api-key": "firstAdminKey0123456789abcdefghij"}
    second = {"x-api-key": "secondAdminKey0123456789abcdefgh"}
    assert query(api_event("GET", "/v1/plugins", headers=first))["statusCode"] == 200
    secrets.put_secret_value(SecretId=arn, SecretString="secondAdminKey0123456789abcdefgh")
    # The new key works at once (a key that does not match makes the container read the secret again,
    # at most every 30 s); once read, the old one is refused.
    assert query(api_event("GET", "/v1/plugins", headers=second))["statusCode"] == 200
    assert query(api_event("GET", "/v1/plugins", headers=first))["statusCode"] == 401
    assert query(api_event("GET", "/v1/plugins", headers=ADMIN))["statusCode"] == 401


def test_when_the_secret_cannot_be_read_an_admin_call_is_told_to_retry(
    function_env: Callable[..., None], aws: Any
) -> None:
    function_env(ADMIN_KEY_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf")
    answer = new_container("QueryFunction")(api_event("GET", "/v1/plugins", headers=ADMIN))
    assert answer["statusCode"] == 503
    assert json.loads(answer["body"])["error"]["code"] == "UNAVAILABLE"


def test_a_dashboard_call_never_reads_the_admin_secret(
    function_env: Callable[..., None], aws: Any, plugin: None, key_of_p1: str
) -> None:
    function_env(ADMIN_KEY_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf")
    answer = get(new_container("QueryFunction"), "/v1/plugins/p1/columns", headers={"x-api-key": key_of_p1})
    assert answer["statusCode"] == 200


def test_each_key_has_a_daily_quota_shared_by_every_container(
    function_env: Callable[..., None], query: Invoke, plugin: None, key_of_p1: str
) -> None:
    other = body(query(api_event("POST", "/v1/plugins/p1/keys", {"label": "other"}, headers=ADMIN)))["key"]
    function_env(KEY_QUOTA_PER_DAY="5")
    one, two = new_container("QueryFunction"), new_container("QueryFunction")
    mine = {"x-api-key": key_of_p1}
    answers = [get(container, "/v1/plugins/p1/columns", headers=mine) for container in (one, two) * 4]
    statuses = [answer["statusCode"] for answer in answers]
    assert statuses.count(200) == 5, statuses
    refused = answers[statuses.index(429)]
    assert json.loads(refused["body"])["error"]["code"] == "RATE_LIMITED"
    assert 23 * 3600 < int(refused["multiValueHeaders"]["Retry-After"][0]) <= 24 * 3600
    # Every key has a quota of its own.
    assert get(one, "/v1/plugins/p1/columns", headers={"x-api-key": other})["statusCode"] == 200


def test_columns_name_the_plugins_own_origins_for_images(query: Invoke, demo_config: Any) -> None:
    # The page loads a client-sent image by itself only from these (others on a click)
    reply = body(query(api_event("GET", "/v1/plugins/demo-plugin/columns", headers=ADMIN)))
    assert reply["image_origins"] == demo_config["allowed_origins"]
    assert "*" not in reply["image_origins"]
