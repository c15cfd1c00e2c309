"""The stores against moto's DynamoDB: rate-limit windows, event keys."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from devstack.local.capacity import metered
from tracking.api_errors import RateLimited
from tracking.ingest.dialects.widget import parse, to_canonical
from tracking.keys import rate_pk
from tracking.models.canonical import CanonicalEvent
from tracking.models.request import RequestInfo
from tracking.models.storage_failures import ItemTooLarge
from tracking.ratelimit import RateLimiter
from tracking.storage.control import ControlStore
from tracking.storage.dynamo import client
from tracking.storage.events import EventStore, event_from_item, event_to_item

NOW = 1_764_016_800_000


def test_reserve_grants_up_to_the_limit_then_none_until_the_window_ends(aws: Any) -> None:
    store = ControlStore(client(), "ControlTable")
    assert store.reserve("ip", 100, 120, 60_000, NOW).granted == 100
    assert store.reserve("ip", 50, 120, 60_000, NOW + 1).granted == 20
    denied = store.reserve("ip", 1, 120, 60_000, NOW + 2)
    assert (denied.granted, denied.window_start) == (0, NOW)
    fresh = store.reserve("ip", 1, 120, 60_000, NOW + 60_000)
    assert (fresh.granted, fresh.window_start) == (1, NOW + 60_000)


def test_reserve_sets_a_ttl_so_windows_clean_themselves_up(aws: Any) -> None:
    ControlStore(client(), "ControlTable").reserve("ip", 1, 120, 60_000, NOW)
    (item,) = aws.scan(TableName="ControlTable")["Items"]
    assert int(item["expires_at"]["N"]) == (NOW + 60_000) // 1000 + 60


def test_a_canonical_event_survives_storage_unchanged(aws: Any) -> None:
    request = parse(
        {
            "event": "purchase",
            "token": "user_abc123def451",
            "ab_test": True,
            "data": {
                "chatbot_id": "bot",
                "orderNum": "9",
                "items": [{"id": "a", "price": 2.5, "quantity": 3, "currency": "CHF"}],
            },
        }
    )
    (event,) = to_canonical(
        request, "bot", None, RequestInfo(received_at=NOW, ip="192.0.2.1", user_agent="UA")
    )
    assert event_from_item(event_to_item(event, 0)) == event
    assert EventStore(client(), "EventsTable", 30).put(event) is True
    (item,) = aws.scan(TableName="EventsTable")["Items"]
    assert event_from_item(item) == event
    assert int(item["expires_at"]["N"]) == NOW // 1000 + 30 * 86_400


def test_numbers_come_back_as_they_were_sent(aws: Any) -> None:
    event = CanonicalEvent(
        plugin_id="p",
        user_id="u",
        key="k",
        dialect="plugin",
        event_id="g:1",
        value=7.5,
        event_time=NOW,
        received_at=NOW,
    )
    assert event_from_item(event_to_item(event, 0)).value == event.value


def test_a_new_ip_costs_one_write(aws: Any) -> None:
    with metered(client()) as usage:
        grant = ControlStore(client(), "ControlTable").reserve("new-ip", 8, 120, 60_000, NOW)
    assert grant.granted == 8
    assert usage.requests == {"UpdateItem": 1}
    assert usage.total_writes() == 1


def test_a_retried_call_with_the_clients_id_leaves_the_stored_event_alone(aws: Any) -> None:
    store = EventStore(client(), "EventsTable", 30)
    first = CanonicalEvent(
        plugin_id="p",
        user_id="u",
        key="k",
        dialect="segment",
        event_id="m:abc",
        value="first",
        event_time=NOW,
        received_at=NOW,
    )
    assert store.put(first) is True
    assert store.put(first.model_copy(update={"value": "second", "received_at": NOW + 5})) is False
    (item,) = aws.scan(TableName="EventsTable")["Items"]
    assert event_from_item(item) == first


def test_a_generated_id_is_written_without_a_condition(aws: Any) -> None:
    event = CanonicalEvent(
        plugin_id="p",
        user_id="u",
        key="k",
        dialect="plugin",
        event_id="g:0001",
        event_time=NOW,
        received_at=NOW,
    )
    with metered(client()) as usage:
        assert EventStore(client(), "EventsTable", 30).put(event) is True
    assert usage.requests == {"PutItem": 1}


class Clock:
    def __init__(self) -> None:
        self.now = NOW / 1000

    def __call__(self) -> float:
        return self.now


def admitted(limiters: list[RateLimiter], requests: int, clock: Clock) -> list[bool]:
    """One IP's requests taken by the containers in turn, a few milliseconds apart."""
    outcome = []
    for n in range(requests):
        try:
            limiters[n % len(limiters)].check("198.51.100.9")
            outcome.append(True)
        except RateLimited:
            outcome.append(False)
        clock.now += 0.005
    return outcome


@pytest.mark.parametrize("containers", [1, 2, 8, 40])
def test_an_ip_served_by_many_containers_gets_nearly_its_whole_limit_and_never_more(
    aws: Any, containers: int
) -> None:
    # Given containers that each lease from one IP's shared budget of 120 a minute
    clock = Clock()
    store = ControlStore(client(), "ControlTable")
    limiters = [RateLimiter(store, 120, clock=clock) for _ in range(containers)]
    # When the IP's requests go to them in turn
    outcome = admitted(limiters, 300, clock)
    # Then at least 110 of its first 120 are admitted, and never more than 120 in the window
    assert sum(outcome[:120]) >= 110
    assert sum(outcome) <= 120


def test_a_visitor_on_one_container_costs_a_write_per_lease(aws: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(ControlStore(client(), "ControlTable"), 120, clock=clock)
    with metered(client()) as usage:
        assert all(admitted([limiter], 8, clock))
    assert usage.total_writes() == 1


def test_an_event_too_large_for_an_item_is_refused_before_anything_is_written(aws: Any) -> None:
    # Given a batch of events, one of which would not fit DynamoDB's 400 KB item
    store = EventStore(client(), "EventsTable", retention_days=400)

    def event(n: int, note: str) -> CanonicalEvent:
        return CanonicalEvent(
            plugin_id="p",
            user_id="u",
            key="k",
            kind="track",
            dialect="segment",
            event_id=f"m:{n}",
            event_time=NOW,
            received_at=NOW,
            properties={"note": note},
        )

    events = [event(1, "small"), event(2, "x" * 420_000), event(3, "small")]
    # When it is stored, as one batch or one at a time
    with pytest.raises(ItemTooLarge) as refused:
        store.put_all(events)
    with pytest.raises(ItemTooLarge):
        store.put(events[1])
    # Then nothing of it was written, and the refusal says how large the item would have been
    assert aws.scan(TableName="EventsTable")["Items"] == []
    assert refused.value.size > refused.value.limit == 400 * 1024


def test_a_budget_others_keep_changing_grants_nothing_rather_than_one_unreserved(aws: Any) -> None:
    # Given an IP's window that other containers keep drawing on between each of our tries
    store = ControlStore(client(), "ControlTable")
    assert store.reserve("busy", 112, 120, 60_000, NOW).granted == 112
    other = boto3.client("dynamodb")  # another container's client, outside our hooks
    key = {"pk": {"S": rate_pk("busy")}, "sk": {"S": "window"}}

    def another_container_takes_one(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key and "ConditionExpression" in params:
            other.update_item(
                TableName="ControlTable",
                Key=key,
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

    client().meta.events.register("before-parameter-build.dynamodb.UpdateItem", another_container_takes_one)
    try:
        # When this container asks for a lease of 8 while 8 are left
        grant = store.reserve("busy", 8, 120, 60_000, NOW + 1)
    finally:
        client().meta.events.unregister(
            "before-parameter-build.dynamodb.UpdateItem", another_container_takes_one
        )
    # Then it is granted nothing (it used to let one through unreserved: the 121st of 120)
    assert (grant.granted, grant.contended) == (0, True)
    (item,) = aws.scan(TableName="ControlTable")["Items"]
    assert int(item["n"]["N"]) == 112 + 4  # the others' four, none of ours
    # And the limiter, in the same spot (a window with 8 left that others keep drawing on), answers
    # 429 with a retry in a second
    store.reserve("busy-2", 112, 120, 60_000, NOW)
    key = {"pk": {"S": rate_pk("busy-2")}, "sk": {"S": "window"}}
    limiter = RateLimiter(store, 120, clock=lambda: (NOW + 2) / 1000)
    client().meta.events.register("before-parameter-build.dynamodb.UpdateItem", another_container_takes_one)
    try:
        with pytest.raises(RateLimited) as limited:
            limiter.check("busy-2")
    finally:
        client().meta.events.unregister(
            "before-parameter-build.dynamodb.UpdateItem", another_container_takes_one
        )
    assert limited.value.retry_after == 1
