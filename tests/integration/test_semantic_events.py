"""Segment's semantic events through the functions on moto: a shop whose chatbot widget counts the
visits sends Segment's live chat, ecommerce and A/B calls for the same users, and the summary's
funnel, revenue and A/B groups move as the contract lists (``Order Completed`` is a purchase,
``Order Refunded`` takes revenue off, never below zero for a user, ``Experiment Viewed`` names the
group)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tests.conftest import SAMPLE_ADMIN_KEY, sample_event
from tests.helpers import api_event
from tests.integration.conftest import Invoke, aggregate_stored_events, body

PLUGIN = "demo-plugin"  # the sample config's plugin, write key wk_live_123


def visit(ingest: Invoke, event: str, token: str) -> None:
    payload = {"event": event, "token": token, "data": {"chatbot_id": PLUGIN}}
    assert ingest(api_event("POST", "/api/analytics/track", payload))["statusCode"] == 200


def segment(ingest: Invoke, calls: list[dict[str, Any]]) -> None:
    request = sample_event("segment-batch")  # Basic auth with the sample write key
    request["body"] = json.dumps({"batch": [{"type": "track", **call} for call in calls]})
    answer = ingest(request)
    assert answer["statusCode"] == 200, answer["body"]
    assert body(answer)["rejected"] == []


def test_semantic_events_move_the_funnel_revenue_and_ab_groups(
    aws: Any, ingest: Invoke, aggregate: Invoke, query: Invoke, demo_config: Any
) -> None:
    alice, bob, carol = "shopper_alice_1", "shopper_bob_22", "shopper_carol_3"
    for token in (alice, bob, carol):
        visit(ingest, "visitor", token)
    visit(ingest, "bot_open", alice)

    def call(user: str, event: str, n: int, **properties: Any) -> dict[str, Any]:
        return {"userId": user, "event": event, "messageId": f"m-{user}-{n}", "properties": properties}

    segment(
        ingest,
        [
            call(alice, "Experiment Viewed", 1, experiment_id="checkout", variation_name="Control"),
            call(alice, "Live Chat Conversation Started", 2, conversation_id="c1"),
            call(alice, "Live Chat Message Sent", 3, conversation_id="c1"),
            call(alice, "Product Added", 4, product_id="p1", price=100, currency="EUR"),
            call(alice, "Order Completed", 5, order_id="O-1", revenue=100, currency="EUR"),
            call(alice, "Order Completed", 6, order_id="O-1", revenue=100, currency="EUR"),  # the same order
            call(alice, "Order Refunded", 7, order_id="O-1", revenue=30, currency="EUR"),
            # Bob's refund is larger than what he paid: it takes off 20, not 50.
            call(bob, "Order Refunded", 8, order_id="O-2", total=50, currency="EUR"),
            call(bob, "Order Completed", 9, order_id="O-2", total=20, currency="EUR"),
            call(bob, "Experiment Viewed", 10, experiment_id="checkout", variation_id="B"),
            call(carol, "Experiment Viewed", 11, experiment_id="checkout", variation_id=0),
        ],
    )
    aggregate_stored_events(aws, aggregate)
    today = datetime.now(UTC).date().isoformat()
    asked = {"chatbot_id": PLUGIN, "to": today}
    answer = query(
        api_event("GET", "/api/analytics/summary", headers={"x-api-key": SAMPLE_ADMIN_KEY}, query=asked)
    )
    assert answer["statusCode"] == 200, answer["body"]
    summary = body(answer)
    funnel = {step["step"]: step["users"] for step in summary["funnel"]}
    # Alice goes all the way; Bob bought but never opened the bot, so he stops at the first step.
    assert funnel == {
        "visitor": 3,
        "bot_open": 1,
        "convo_started": 1,
        "message_sent": 1,
        "added_to_cart": 1,
        "purchase": 1,
    }
    assert summary["revenue_eur"] == 70  # 100 + 20 paid, 30 + 20 refunded
    assert summary["ab_test"]["control"] == {
        "users": 2,
        "conversions": 1,
        "conversion_rate": 0.5,
        "revenue_eur": 70,
    }
    assert summary["ab_test"]["test"] == {
        "users": 1,
        "conversions": 1,
        "conversion_rate": 1.0,
        "revenue_eur": 0,
    }
    assert summary["counts"]["Order Completed"] == 2  # one per order
    assert summary["counts"]["Experiment Viewed"] == 3
