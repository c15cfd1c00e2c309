"""Destinations: what a config accepts and what a read shows of it, what each is sent (the Segment-spec
message, the signature, the batch), where a URL may lead (SSRF), and which stored events the router
queues for whom."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from devstack.fakes.deliveries import FakeDestinations, FakeOutbox
from tests.helpers import shop_event
from tracking.api_errors import ValidationFailed, validate
from tracking.destinations.addresses import AddressRefused, target
from tracking.destinations.admin import DELETE_MESSAGE_DELAY_S, DestinationsAdmin
from tracking.destinations.messages import (
    body_bytes,
    delete_message,
    segment_message,
    segment_request,
    signature,
    webhook_request,
)
from tracking.destinations.models import Destination, DestinationConfig
from tracking.destinations.router import CachedDestinations, Router, wants
from tracking.models.canonical import CanonicalEvent
from tracking.wiring import DELIVERY_LEASE_MS

NOW = 1_764_016_799_000
SECRET = "whsec_0123456789abcdef"


def event(**fields: Any) -> CanonicalEvent:
    return shop_event(**{"message_id": "abc", "event_time": NOW - 5_000, **fields})


def destination(destination_id: str = "hook", **config: Any) -> Destination:
    body = {"type": "webhook", "url": "https://hooks.example.com/in", "secret": SECRET, **config}
    return Destination(
        plugin_id="shop",
        destination_id=destination_id,
        config=DestinationConfig.model_validate(body),
        created_at=NOW - 60_000,
        updated_at=NOW - 60_000,
        enabled_at=NOW - 60_000,
    )


# -- the config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"type": "webhook", "url": "https://x.example.com/"},  # no secret
        {"type": "webhook", "url": "https://x.example.com/", "secret": "short"},
        {"type": "webhook", "url": "https://x.example.com/", "secret": SECRET, "write_key": "wk"},
        {"type": "segment", "url": "https://api.example.com", "secret": SECRET},
        {"type": "email", "url": "https://x.example.com/", "secret": SECRET},
        {
            "type": "webhook",
            "url": "https://x.example.com/",
            "secret": SECRET,
            "filter": {"types": ["bogus"]},
        },
        {"type": "webhook", "url": "https://x.example.com/", "secret": SECRET, "extra": 1},
    ],
)
def test_a_bad_config_is_a_422_that_never_echoes_the_credential(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate(DestinationConfig, body)
    assert refused.value.status == 422
    assert SECRET not in json.dumps(refused.value.body())


def test_a_read_shows_the_credential_as_its_last_4_characters_and_nothing_prints_it() -> None:
    hook = destination()
    shown = hook.view()
    assert shown["secret"] == "****cdef"
    assert SECRET not in json.dumps(shown)
    assert SECRET not in repr(hook)
    assert SECRET not in str(hook.config)
    segment = destination(
        "seg", type="segment", url="https://api.example.com", secret=None, write_key="wk_live_9876"
    )
    assert segment.view()["write_key"] == "****9876"
    with pytest.raises(ValidationError) as refused:
        DestinationConfig.model_validate({"type": "webhook", "url": "x", "secret": SECRET})
    assert SECRET not in str(refused.value)


# -- what is sent ---------------------------------------------------------------------------------


def test_a_widget_event_is_a_track_of_its_type_with_its_data_and_the_visitor_as_anonymous_id() -> None:
    widget = event(
        dialect="widget",
        key="purchase",
        user_id="visitor_token_01",
        message_id=None,
        event_id="w:1",
        properties={"chatbot_id": "shop", "orderNum": "A-1"},
        items=[{"item_id": "SKU-1", "value": Decimal("4.50"), "quantity": 2, "currency": "EUR"}],
    )
    message = segment_message(widget)
    assert message["type"] == "track"
    assert message["event"] == "purchase"
    assert message["userId"] is None
    assert message["anonymousId"] == "visitor_token_01"
    assert message["messageId"] == "w:1"  # the id the service stored it under
    assert message["plugin_id"] == "shop"
    sent = json.loads(body_bytes(message))
    assert sent["properties"]["items"] == [
        {"item_id": "SKU-1", "value": 4.5, "quantity": 2, "currency": "EUR"}
    ]
    assert sent["timestamp"] == "2025-11-24T20:39:54.000Z"
    assert sent["receivedAt"] == "2025-11-24T20:39:59.000Z"


def test_a_plugin_event_is_a_track_of_its_key_with_its_value_and_a_segment_call_keeps_its_ids() -> None:
    plugin = segment_message(event(dialect="plugin", key="poll-rating", value=Decimal(4), user_id="p-42"))
    assert (plugin["event"], plugin["userId"], plugin["properties"]) == ("poll-rating", "p-42", {"value": 4})
    identify = segment_message(
        event(kind="identify", key="identify", user_id="u-9", anonymous_id="anon-1", traits={"plan": "pro"})
    )
    assert identify["type"] == "identify"
    assert "event" not in identify
    assert (identify["userId"], identify["anonymousId"], identify["traits"]) == (
        "u-9",
        "anon-1",
        {"plan": "pro"},
    )
    anonymous = segment_message(event(user_id="anon-2", anonymous_id="anon-2"))
    assert anonymous["userId"] is None
    assert anonymous["anonymousId"] == "anon-2"


def test_a_webhook_body_is_signed_with_hmac_sha256_of_its_exact_bytes() -> None:
    message = segment_message(event())
    body, headers = webhook_request(SECRET, message)
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Signature"] == f"sha256={expected}" == signature(SECRET, body)
    assert headers["Idempotency-Key"] == "abc"
    assert json.loads(body) == json.loads(body_bytes(message))
    deletion = delete_message("u-1", ["anon-1"], "del-7")
    assert deletion == {
        "type": "delete",
        "userId": "u-1",
        "anonymousIds": ["anon-1"],
        "messageId": "delete-del-7",
    }


def test_a_segment_destination_gets_a_batch_with_basic_auth_of_its_write_key() -> None:
    messages = [segment_message(event(event_id=f"m:{n}", message_id=str(n))) for n in range(3)]
    body, headers = segment_request("wk_live_1", messages)
    assert [m["messageId"] for m in json.loads(body)["batch"]] == ["0", "1", "2"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"wk_live_1:").decode()
    assert headers["Idempotency-Key"].startswith("batch-")
    assert segment_request("wk_live_1", messages)[1]["Idempotency-Key"] == headers["Idempotency-Key"]


# -- where a URL may lead -------------------------------------------------------------------------


def resolver(*addresses: str) -> Any:
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "10.0.0.7", "127.0.0.1", "172.16.4.4", "192.168.1.1", "100.64.0.1", "0.0.0.0",
     "::1", "fd00:ec2::254", "fe80::1", "::ffff:10.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_a_name_resolving_to_a_private_loopback_link_local_or_metadata_address_is_refused(
    address: str,
) -> None:
    with pytest.raises(AddressRefused, match="not public"):
        target("https://hooks.example.com/in", allow_local=False, resolver=resolver(address))


def test_a_name_with_one_private_answer_among_public_ones_is_refused() -> None:
    with pytest.raises(AddressRefused):
        target(
            "https://hooks.example.com/", allow_local=False, resolver=resolver("93.184.216.34", "10.1.1.1")
        )


def test_a_public_https_url_is_sent_to_the_address_that_was_checked() -> None:
    where = target(
        "https://hooks.example.com:8443/in?x=1", allow_local=False, resolver=resolver("93.184.216.34")
    )
    assert (where.scheme, where.host, where.port, where.address, where.path) == (
        "https",
        "hooks.example.com",
        8443,
        "93.184.216.34",
        "/in?x=1",
    )


@pytest.mark.parametrize(
    ("url", "allow_local"),
    [
        ("http://hooks.example.com/in", False),
        ("http://127.0.0.1:9000/in", False),  # deployed: never
        ("http://localhost:9000/in", True),  # a name, even locally
        ("http://127.0.0.2:9000/in", True),
        ("https://user:pw@hooks.example.com/", False),
        ("ftp://hooks.example.com/", False),
        ("https:///nohost", False),
    ],
)
def test_only_https_or_the_local_stacks_literal_loopback_is_allowed(url: str, allow_local: bool) -> None:
    with pytest.raises(AddressRefused):
        target(url, allow_local=allow_local, resolver=resolver("93.184.216.34"))


def test_the_local_stack_may_deliver_to_http_127_0_0_1_with_a_port() -> None:
    where = target("http://127.0.0.1:9000/in", allow_local=True, resolver=resolver())
    assert (where.scheme, where.address, where.port) == ("http", "127.0.0.1", 9000)


# -- what the router queues -----------------------------------------------------------------------


def test_a_destination_wants_events_stored_while_enabled_that_pass_its_filter_and_no_uncounted_bot() -> None:
    hook = destination(filter={"types": ["track"], "events": ["Order Completed", "purchase"]})
    assert wants(hook, event())
    assert not wants(hook, event(key="Product Viewed"))
    assert not wants(hook, event(kind="identify", key="identify"))
    assert not wants(hook, event(received_at=NOW - 120_000))  # stored before it was enabled
    assert not wants(hook, event(context={"bot": True}))
    assert wants(hook.model_copy(update={"bots": "include"}), event(context={"bot": True}))  # counted
    disabled = destination(enabled=False).model_copy(update={"enabled_at": None})
    assert not wants(disabled, event())
    assert wants(destination(filter={"types": ["identify"]}), event(kind="identify", key="identify"))


class ListQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, bodies: Any) -> None:
        self.sent.extend(bodies)


def test_the_router_queues_one_message_per_wanting_destination_and_counts_them_pending() -> None:
    store = FakeDestinations()
    store.save_destination(destination("a"))
    store.save_destination(destination("b", filter={"types": ["identify"]}))
    queue, outbox = ListQueue(), FakeOutbox()
    router = Router(CachedDestinations(store, 5.0), queue, outbox, lambda: NOW)
    assert router.route([event(), event(event_id="m:2", message_id="2", plugin_id="other")]) == 1
    (body,) = queue.sent
    assert (body["plugin_id"], body["destination_id"], body["queued_at"]) == ("shop", "a", NOW)
    assert body["message"]["messageId"] == "abc"
    assert outbox.total(destination("a").ref)["pending"] == 1
    assert outbox.total(destination("b").ref) == {"delivered": 0, "failed": 0, "pending": 0}


def test_a_plugins_destinations_are_read_once_per_cache_period() -> None:
    store = FakeDestinations()
    store.save_destination(destination())
    clock = [0.0]
    cached = CachedDestinations(store, 5.0, clock=lambda: clock[0])
    for _ in range(3):
        cached.destinations("shop")
    assert store.reads == 1
    clock[0] = 5.0
    assert cached.destination(destination().ref) is not None
    assert store.reads == 2


class DelayedQueue(ListQueue):
    def __init__(self) -> None:
        super().__init__()
        self.delays: list[int] = []

    def send(self, bodies: Any, delay_s: int = 0) -> None:
        super().send(bodies)
        self.delays.append(delay_s)


def test_a_deletion_marks_the_ids_forgotten_then_queues_a_delayed_delete_for_each_enabled_webhook() -> None:
    store = FakeDestinations()
    store.save_destination(destination("a"))
    store.save_destination(destination("seg", type="segment", secret=None, write_key="wk_live_1"))
    store.save_destination(destination("off", enabled=False))
    queue, outbox = DelayedQueue(), FakeOutbox()
    admin = DestinationsAdmin(store, outbox, queue, lambda: NOW)
    admin.forget_person("shop", "del-1", "u-1", ["u-1", "anon-1"], NOW)
    assert outbox.forgotten("shop", ["u-1", "anon-1", "u-2"]) == {"u-1": NOW, "anon-1": NOW}
    (body,) = queue.sent
    assert body["destination_id"] == "a"
    assert body["message"] == {
        "type": "delete",
        "userId": "u-1",
        "anonymousIds": ["anon-1"],
        "messageId": "delete-del-1",
    }
    assert queue.delays == [DELETE_MESSAGE_DELAY_S]
    assert DELETE_MESSAGE_DELAY_S * 1000 > DELIVERY_LEASE_MS  # an event being sent is answered first


def test_a_destination_saved_just_before_an_event_was_stored_gets_it_despite_the_kept_copy() -> None:
    """The router keeps each plugin's destinations a few seconds; an event stored after that copy was
    read has them read again, so a destination saved in between is not missed."""
    store = FakeDestinations()
    wall = [NOW - 10_000]
    slept: list[float] = []
    cached = CachedDestinations(store, 5.0, clock=lambda: 0.0, wall_ms=lambda: wall[0], sleep=slept.append)
    queue, outbox = ListQueue(), FakeOutbox()
    router = Router(cached, queue, outbox, lambda: NOW)
    assert router.route([event(event_id="m:0", received_at=NOW - 10_000)]) == 0  # no destination yet
    store.save_destination(destination().model_copy(update={"enabled_at": NOW - 5_000}))
    wall[0] = NOW
    assert router.route([event()]) == 1  # stored at NOW, after the copy: read again
    assert store.reads == 2
    assert slept == [0.2]  # at most one read per interval: the second waited for it


@pytest.mark.parametrize(
    "url", ["https://bad\x00name.example/", "https://[::1/", "https://" + "a" * 300 + ".example/"]
)
def test_a_url_no_resolver_can_read_is_refused_not_a_crash(url: str) -> None:
    with pytest.raises(AddressRefused):
        target(url, allow_local=False)
