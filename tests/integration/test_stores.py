"""The stores against moto's DynamoDB: rate-limit windows, event keys."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from devstack.local.capacity import metered
from tests.integration.faults import dynamodb_fails
from tracking.api_errors import RateLimited
from tracking.ingest.dialects.widget import parse, to_canonical
from tracking.keys import client_id_pk, event_pk, rate_pk
from tracking.models.canonical import CanonicalEvent
from tracking.models.request import RequestInfo
from tracking.models.storage_failures import ItemTooLarge, StorageUnavailable
from tracking.ratelimit import RateLimiter
from tracking.storage.claims import CLAIM_STALE_MS, claim_to_item
from tracking.storage.control import ControlStore
from tracking.storage.dynamo import client
from tracking.storage.events import EventStore, event_from_item, event_to_item, stored_event_item
from tracking.storage.user_events import UserEvents

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
    item = items_by_key(aws)[(event_pk("bot", event.user_id), event.event_id)]  # (beside its id's claim)
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


class Clock:
    def __init__(self) -> None:
        self.now = NOW / 1000

    def __call__(self) -> float:
        return self.now


def named(user_id: str, value: str = "first", event_id: str = "m:abc", at: int = NOW) -> CanonicalEvent:
    return CanonicalEvent(
        plugin_id="p",
        user_id=user_id,
        key="k",
        dialect="segment",
        event_id=event_id,
        value=value,
        event_time=at,
        received_at=at,
    )


def items_by_key(aws: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(i["pk"]["S"], i["sk"]["S"]): i for i in aws.scan(TableName="EventsTable")["Items"]}


def test_a_retried_call_with_the_clients_id_leaves_the_stored_event_alone(aws: Any) -> None:
    store = EventStore(client(), "EventsTable", 30)
    first = named("u")
    assert store.put(first) is True
    assert store.put(first.model_copy(update={"value": "second", "received_at": NOW + 5})) is False
    # The event in its user's partition (so on the user's stream shard), its id claimed under its own key
    stored = items_by_key(aws)
    assert set(stored) == {(event_pk("p", "u"), "m:abc"), (client_id_pk("p", "m:abc"), "m:abc")}
    assert event_from_item(stored[(event_pk("p", "u"), "m:abc")]) == first
    assert stored[(client_id_pk("p", "m:abc"), "m:abc")]["owner"] == {"S": event_pk("p", "u")}


def test_a_client_id_is_stored_once_per_plugin_whatever_its_user(aws: Any) -> None:
    store = EventStore(client(), "EventsTable", 30)
    assert store.put(named("u1")) is True
    assert store.put(named("u2", "other")) is False
    assert store.put(named("u1", event_id="m:other")) is True
    events = [event_from_item(i) for i in items_by_key(aws).values() if i["kind"]["S"] != "claim"]
    assert sorted((e.user_id, e.event_id, e.value) for e in events) == [
        ("u1", "m:abc", "first"),
        ("u1", "m:other", "first"),
    ]


def test_an_id_an_older_version_stored_its_event_under_is_taken(aws: Any) -> None:
    old = stored_event_item(named("u1"), 86_400)
    aws.put_item(TableName="EventsTable", Item={**old, "pk": {"S": client_id_pk("p", "m:abc")}})
    assert EventStore(client(), "EventsTable", 30).put(named("u2")) is False
    assert len(items_by_key(aws)) == 1


def test_a_claim_whose_event_was_never_written_is_finished_by_the_retry_or_taken_over_once_stale(
    aws: Any,
) -> None:
    clock = Clock()
    store = EventStore(client(), "EventsTable", 30, clock=clock)
    # Given attempts that claimed their ids and died before writing the event
    for user_id, event_id in (("u1", "m:mine"), ("u1", "m:theirs")):
        claim = claim_to_item(stored_event_item(named(user_id, event_id=event_id), 86_400), NOW)
        aws.put_item(TableName="EventsTable", Item=claim)
    # When the same call is retried, its event is written
    assert store.put(named("u1", event_id="m:mine")) is True
    # When another user's call has the id while the claim is fresh, it is told to retry (nothing stored)
    clock.now = (NOW + CLAIM_STALE_MS - 1_000) / 1000
    with pytest.raises(StorageUnavailable):
        store.put(named("u2", event_id="m:theirs"))
    # Once the claim is stale, the call takes it over and is stored; the first caller's retry is then a
    # duplicate: one event for the id
    clock.now = (NOW + CLAIM_STALE_MS + 1_000) / 1000
    assert store.put(named("u2", event_id="m:theirs")) is True
    assert store.put(named("u1", event_id="m:theirs")) is False
    stored = items_by_key(aws)
    assert (event_pk("p", "u1"), "m:mine") in stored
    assert (event_pk("p", "u2"), "m:theirs") in stored
    assert (event_pk("p", "u1"), "m:theirs") not in stored


def test_forgetting_an_event_removes_its_ids_claim(aws: Any) -> None:
    store = EventStore(client(), "EventsTable", 30)
    store.put(named("u1"))
    UserEvents(client(), "EventsTable", 30).forget([named("u1")])
    assert items_by_key(aws) == {}
    assert store.put(named("u2")) is True  # (not suppressed: a new call with the id counts again)


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


def test_a_days_salt_whose_write_answer_was_lost_is_read_back_and_one_never_written_is_a_503(
    aws: Any,
) -> None:
    """The rate limit's salt (ingest/privacy.py): a put that landed but whose answer was lost is read
    back, so every container agrees on one salt; a put that never landed leaves the call a 503."""
    store = ControlStore(client(), "ControlTable")

    def lost(**_: Any) -> None:
        raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    client().meta.events.register("after-call.dynamodb.PutItem", lost)
    try:
        salt = store.daily_salt("2026-12-07", 1_796_774_400)
    finally:
        client().meta.events.unregister("after-call.dynamodb.PutItem", lost)
    assert len(salt) == 32
    assert ControlStore(client(), "ControlTable").daily_salt("2026-12-07", 1_796_774_400) == salt
    with dynamodb_fails("PutItem"), pytest.raises(StorageUnavailable):
        store.daily_salt("2026-12-08", 1_796_860_800)
