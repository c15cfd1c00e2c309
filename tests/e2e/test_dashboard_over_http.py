"""The issue's "done when" for the read side, over HTTP on the local stack (DynamoDB Local)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.e2e.conftest import Stack, eventually
from tests.helpers import key_order

pytestmark = pytest.mark.e2e

CONFIG = {
    "tracking": {
        "events": [
            {
                "name": {"en": "Handouts downloads", "fr": "Nombre de téléchargements"},
                "key": "handouts",
                "aggregations": ["group_array", "array", "increment"],
                "value_type": "string",
            },
            {"name": {"en": "Rating"}, "key": "rating", "aggregations": ["average"], "value_type": "number"},
        ]
    }
}
USERS = ["alice", "bruno", "chloé", "dmitri", "eun-ji"]


@pytest.fixture(scope="module")
def data(stack: Stack) -> Stack:
    assert stack.admin("PUT", "/v1/plugins/http-plugin/config", CONFIG).status == 200
    assert stack.admin("PUT", "/v1/plugins/other-plugin/config", CONFIG).status == 200
    events = [
        {"key": "handouts", "value": f"slides, part {n}", "user_id": user} for n, user in enumerate(USERS)
    ]
    events += [{"key": "rating", "value": 4, "user_id": user} for user in USERS]
    assert stack.request("POST", "/v1/plugins/http-plugin/track", {"events": events}).status == 200

    def widget(event: str, token: str, ip: str, **data: Any) -> None:
        payload = {
            "event": event,
            "token": token,
            "ab_test": True,
            "data": {"chatbot_id": "http-bot", **data},
        }
        assert stack.request("POST", "/api/analytics/track", payload, source_ip=ip).status == 200

    for n, token in enumerate(["http_visitor_a0", "http_visitor_b0", "http_visitor_c1", "http_visitor_d1"]):
        widget("visitor", token, f"127.0.1.{n + 1}")
    items = [{"item_id": "SKU-123", "value": 49.99, "quantity": 2, "currency": "USD"}]
    widget("purchase", "http_visitor_a0", "127.0.1.1", orderNum="HTTP-ORD-1", items=items)
    widget("purchase", "http_visitor_a0", "127.0.1.1", orderNum="HTTP-ORD-1", items=items)  # reported twice

    def aggregated() -> bool:
        rows = stack.admin("GET", "/v1/plugins/http-plugin/rows?limit=50")
        summary = stack.admin("GET", "/api/analytics/summary?chatbot_id=http-bot")
        return (
            rows.status == 200
            and len(rows.json["rows"]) == 5
            and all(len(r["values"]) == 2 for r in rows.json["rows"])
            and summary.status == 200
            and summary.json["counts"].get("visitor") == 4
            and summary.json["counts"].get("purchase") == 1
        )

    assert eventually(aggregated), "the stream did not aggregate the events"
    return stack


def test_columns_in_french_and_falling_back_to_english(data: Stack) -> None:
    french = data.admin("GET", "/v1/plugins/http-plugin/columns?lang=fr").json["columns"]
    assert [(c["key"], c["name"], c["aggregation"]) for c in french] == [
        ("handouts", "Nombre de téléchargements", "group_array"),
        ("rating", "Rating", "average"),
    ]
    assert (
        data.admin("GET", "/v1/plugins/http-plugin/columns?lang=it").json["columns"][0]["name"]
        == "Handouts downloads"
    )


def test_rows_page_through_five_users_two_at_a_time(data: Stack) -> None:
    seen, pages, cursor = [], [], None
    while True:
        path = "/v1/plugins/http-plugin/rows?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = data.admin("GET", path).json
        pages.append(len(page["rows"]))
        seen += [row["user_id"] for row in page["rows"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [2, 2, 1]
    assert seen == key_order(USERS)
    assert len(set(seen)) == 5


def test_csv_opens_as_one_row_per_user(data: Stack) -> None:
    reply = data.admin("GET", "/v1/plugins/http-plugin/export.csv?lang=fr")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="http-plugin.csv"' in reply.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(reply.raw.decode("utf-8-sig"), newline="")))
    assert table[0] == ["user_id", "Nombre de téléchargements", "Rating"]
    assert [row[0] for row in table[1:]] == key_order(USERS)
    assert next(row for row in table if row[0] == "alice")[1:] == ["1 (slides, part 0 1)", "4"]


def test_summary_of_the_chatbot(data: Stack) -> None:
    summary = data.admin("GET", "/api/analytics/summary?chatbot_id=http-bot").json
    assert summary["revenue_eur"] == 91.98  # 49.99 x 2 USD at 0.92, counted once
    assert summary["counts"]["purchase"] == 1
    assert set(summary["ab_test"]) == {"control", "test", "comparison"}
    assert summary["ab_test"]["control"] == {
        "users": 2,
        "conversions": 1,
        "conversion_rate": 0.5,
        "revenue_eur": 91.98,
    }
    assert summary["ab_test"]["test"]["users"] == 2
    assert summary["funnel"][0] == {
        "step": "visitor",
        "users": 4,
        "conversion_from_previous": None,
        "conversion_overall": 1.0,
    }


def test_a_scoped_key_reads_its_plugin_and_gets_403_on_another(data: Stack) -> None:
    created = data.admin("POST", "/v1/plugins/http-plugin/keys", {"label": "e2e"})
    assert created.status == 201
    key = {"x-api-key": created.json["key"]}
    assert data.request("GET", "/v1/plugins/http-plugin/rows", headers=key).status == 200
    denied = data.request("GET", "/v1/plugins/other-plugin/rows", headers=key)
    assert (denied.status, denied.json["error"]["code"]) == (403, "FORBIDDEN")
    assert data.request("PUT", "/v1/plugins/http-plugin/config", CONFIG, headers=key).status == 403
    assert data.request("GET", "/v1/plugins/http-plugin/rows").status == 401
    assert data.admin("GET", "/v1/plugins/other-plugin/rows").status == 200


def test_the_openapi_document_and_the_page_are_served(data: Stack) -> None:
    document = data.request("GET", "/openapi.json").json
    assert "/v1/plugins/{plugin_id}/rows" in document["paths"]
    page = data.request("GET", "/dashboard")
    assert (page.status, page.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
