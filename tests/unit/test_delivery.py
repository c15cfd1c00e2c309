"""The delivery of a queue batch (tracking/destinations/delivery.py) on the in-memory stores: each
message delivered once, retried with backoff, or put in its destination's failures; one destination's
trouble never holds back another's messages."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from devstack.fakes.deliveries import FakeDestinations, FakeOutbox
from tracking.destinations.addresses import Target
from tracking.destinations.delivery import ACK, Delivery, Envelope, Verdict, backoff_s
from tracking.destinations.messages import segment_message
from tracking.destinations.models import Destination, DestinationConfig, DestinationRef
from tracking.destinations.router import CachedDestinations
from tracking.destinations.sender import Outcome
from tracking.models.canonical import CanonicalEvent
from tracking.models.storage_failures import StorageUnavailable

NOW = 1_764_016_799_000
SECRET = "whsec_0123456789abcdef"
PUBLIC = {
    "hook.example.com": "93.184.216.34",
    "seg.example.com": "93.184.216.35",
    "bad.example.com": "10.0.0.9",
}


class FakeSender:
    """Answers by host, in order; records every request it was given."""

    def __init__(self, answers: dict[str, Callable[[int], Outcome]]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.lock = threading.Lock()

    def post(self, target: Target, body: bytes, headers: dict[str, str]) -> Outcome:
        with self.lock:
            self.sent.append((target.host, json.loads(body), headers))
            calls = sum(1 for host, _, _ in self.sent if host == target.host)
        return self.answers[target.host](calls)


def ok(_: int) -> Outcome:
    return Outcome("delivered", 200)


def status(code: int, retry_after: float | None = None) -> Callable[[int], Outcome]:
    verdict = "retry" if code in (408, 429) or code >= 500 else "failed"
    return lambda _: Outcome(verdict, code, f"HTTP {code}", retry_after)  # type: ignore[arg-type]


def silent(_: int) -> Outcome:
    return Outcome("retry", None, "no answer within 10 s")


def hook(destination_id: str, host: str, kind: str = "webhook") -> Destination:
    config: dict[str, Any] = {"type": kind, "url": f"https://{host}/in"}
    config["secret" if kind == "webhook" else "write_key"] = SECRET
    return Destination(
        plugin_id="shop",
        destination_id=destination_id,
        config=DestinationConfig.model_validate(config),
        created_at=0,
        updated_at=0,
        enabled_at=0,
    )


def envelope(n: int, destination_id: str = "a", receive_count: int = 1, queued_at: int = NOW) -> Envelope:
    stored = CanonicalEvent.model_validate(
        {
            "plugin_id": "shop",
            "user_id": f"u-{n}",
            "key": "purchase",
            "dialect": "segment",
            "event_id": f"m:{n}",
            "message_id": f"msg-{n}",
            "event_time": NOW,
            "received_at": NOW,
        }
    )
    body = {
        "plugin_id": "shop",
        "destination_id": destination_id,
        "message": json.loads(json.dumps(segment_message(stored), default=str)),
        "queued_at": queued_at,
    }
    return Envelope(f"q-{destination_id}-{n}-{receive_count}", receive_count, body)


def delivery(
    destinations: list[Destination],
    sender: FakeSender,
    outbox: FakeOutbox,
    now: int = NOW,
    max_age_s: int = 86_400,
) -> Delivery:
    store = FakeDestinations()
    for found in destinations:
        store.save_destination(found)
    return Delivery(
        CachedDestinations(store, 5.0),
        outbox,
        sender,
        lambda: now,
        max_age_s=max_age_s,
        resolver=lambda host, port: [PUBLIC[host]],
    )


A = DestinationRef("shop", "a")


def test_a_delivered_message_is_acknowledged_marked_and_never_sent_again() -> None:
    sender, outbox = FakeSender({"hook.example.com": ok}), FakeOutbox()
    service = delivery([hook("a", "hook.example.com")], sender, outbox)
    first = envelope(1)
    assert service.deliver([first]) == {first.id: ACK}
    _, body, headers = sender.sent[0]
    assert headers["Idempotency-Key"] == "msg-1"
    assert body["messageId"] == "msg-1"
    again = Envelope("q-copy", 1, first.body)  # the queue's duplicate, or the router's second enqueue
    assert service.deliver([again]) == {"q-copy": ACK}
    assert len(sender.sent) == 1
    assert outbox.total(A) == {"delivered": 1, "failed": 0, "pending": -2}  # +2 when the router queued both


@pytest.mark.parametrize(
    ("answer", "attempt", "lowest", "highest"),
    [
        (status(500), 1, 24, 30),
        (status(503), 3, 96, 120),
        (status(408), 12, 2880, 3600),
        (status(429, retry_after=300), 1, 300, 300),
        (silent, 2, 48, 60),
    ],
)
def test_a_5xx_429_408_or_no_answer_comes_back_after_an_exponential_backoff(
    answer: Callable[[int], Outcome], attempt: int, lowest: int, highest: int
) -> None:
    sender, outbox = FakeSender({"hook.example.com": answer}), FakeOutbox()
    message = envelope(1, receive_count=attempt)
    verdict = delivery([hook("a", "hook.example.com")], sender, outbox).deliver([message])[message.id]
    assert verdict.retry_in_s is not None
    assert lowest <= verdict.retry_in_s <= highest
    assert outbox.failed == {}
    assert outbox.markers == {}  # the lease was given back: the next attempt takes it


def test_backoff_starts_within_30_s_doubles_and_stops_growing_at_an_hour() -> None:
    assert [backoff_s(n) for n in range(1, 9)] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert backoff_s(1, jitter=0.8) == 24
    assert backoff_s(1, retry_after_s=100_000) == 43_200  # SQS's longest visibility


def test_another_4xx_or_a_redirect_lands_in_failures_at_once() -> None:
    sender, outbox = FakeSender({"hook.example.com": status(401)}), FakeOutbox()
    message = envelope(1, receive_count=1)
    assert delivery([hook("a", "hook.example.com")], sender, outbox).deliver([message]) == {message.id: ACK}
    failure = outbox.failed[(A, "msg-1")]
    assert (failure.attempts, failure.last_status, failure.last_error) == (1, 401, "HTTP 401")
    assert failure.message == message.body  # what a retry sends again
    assert outbox.total(A) == {"delivered": 0, "failed": 1, "pending": -1}


def test_past_the_max_age_a_retried_message_lands_in_failures() -> None:
    sender, outbox = FakeSender({"hook.example.com": status(500)}), FakeOutbox()
    old = envelope(1, receive_count=9, queued_at=NOW - 86_000_000)
    assert delivery([hook("a", "hook.example.com")], sender, outbox).deliver([old]) == {old.id: ACK}
    assert outbox.failed[(A, "msg-1")].last_status == 500


def test_a_webhooks_messages_are_sent_side_by_side_and_a_silent_one_holds_back_no_other() -> None:
    """The five messages to the silent webhook are all in flight at once (they meet at a barrier,
    which sends one after another would never reach), and the other destination's are delivered."""
    meeting = threading.Barrier(5, timeout=5)

    def silent_together(_: int) -> Outcome:
        meeting.wait()  # BrokenBarrierError if the five were not in flight together
        return silent(0)

    sender = FakeSender({"hook.example.com": silent_together, "seg.example.com": ok})
    outbox = FakeOutbox()
    service = delivery(
        [hook("a", "hook.example.com"), hook("b", "seg.example.com", "segment")], sender, outbox
    )
    batch = [envelope(n, "a") for n in range(5)] + [envelope(n, "b") for n in range(5)]
    verdicts = service.deliver(batch)
    assert sum(1 for host, _, _ in sender.sent if host == "hook.example.com") == 5
    assert all(verdicts[e.id].retry_in_s for e in batch[:5])
    assert all(verdicts[e.id] == ACK for e in batch[5:])
    (segment_post,) = [body for host, body, _ in sender.sent if host == "seg.example.com"]
    assert [m["messageId"] for m in segment_post["batch"]] == [f"msg-{n}" for n in range(5)]


def test_a_segment_destination_gets_at_most_100_messages_a_post_and_no_delete_message() -> None:
    sender, outbox = FakeSender({"seg.example.com": ok}), FakeOutbox()
    service = delivery([hook("b", "seg.example.com", "segment")], sender, outbox)
    batch = [envelope(n, "b") for n in range(150)]
    deletion = Envelope("q-del", 1, {**batch[0].body, "message": {"type": "delete", "messageId": "delete-1"}})
    verdicts = service.deliver([*batch, deletion])
    assert [len(body["batch"]) for _, body, _ in sender.sent] == [100, 50]
    assert all(verdict == ACK for verdict in verdicts.values())
    assert all(m["type"] != "delete" for _, body, _ in sender.sent for m in body["batch"])


def test_an_address_refused_at_delivery_is_a_failure_and_nothing_is_sent() -> None:
    sender, outbox = FakeSender({}), FakeOutbox()
    message = envelope(1)
    assert delivery([hook("a", "bad.example.com")], sender, outbox).deliver([message]) == {message.id: ACK}
    assert sender.sent == []
    assert "not public" in outbox.failed[(A, "msg-1")].last_error


def test_a_message_another_delivery_is_sending_waits_and_is_not_sent_twice_side_by_side() -> None:
    sender, outbox = FakeSender({"hook.example.com": ok}), FakeOutbox()
    assert outbox.claim(A, "msg-1", NOW - 1_000) == "claimed"
    message = envelope(1)
    verdict = delivery([hook("a", "hook.example.com")], sender, outbox).deliver([message])[message.id]
    assert verdict == Verdict(30)
    assert sender.sent == []


def test_storage_down_sends_nothing_and_every_message_comes_back() -> None:
    sender, outbox = FakeSender({"hook.example.com": ok}), FakeOutbox(unavailable=True)
    batch = [envelope(n) for n in range(3)]
    verdicts = delivery([hook("a", "hook.example.com")], sender, outbox).deliver(batch)
    assert sender.sent == []
    assert {v.retry_in_s for v in verdicts.values()} == {30}


def test_storage_failing_midway_through_a_segment_batchs_claims_gives_the_leases_taken_back() -> None:
    class FailsOnThirdClaim(FakeOutbox):
        claims = 0

        def claim(self, ref: DestinationRef, message_id: str, now_ms: int) -> Any:
            self.claims += 1
            if self.claims == 3:
                raise StorageUnavailable("Storage is unavailable (fake); retry later")
            return super().claim(ref, message_id, now_ms)

    sender, outbox = FakeSender({"seg.example.com": ok}), FailsOnThirdClaim()
    batch = [envelope(n, "seg") for n in range(5)]
    verdicts = delivery([hook("seg", "seg.example.com", "segment")], sender, outbox).deliver(batch)
    assert sender.sent == []
    assert {v.retry_in_s for v in verdicts.values()} == {30}
    assert outbox.markers == {}  # no lease left held: the next attempt claims them at once


def test_a_removed_or_disabled_destination_gets_nothing_more() -> None:
    sender, outbox = FakeSender({"hook.example.com": ok}), FakeOutbox()
    gone = envelope(1, "removed")
    assert delivery([], sender, outbox).deliver([gone]) == {gone.id: ACK}
    assert sender.sent == []


def test_nothing_of_a_forgotten_person_stored_before_the_deletion_is_sent_and_webhooks_get_the_delete() -> (
    None
):
    sender = FakeSender({"hook.example.com": ok, "seg.example.com": ok})
    outbox = FakeOutbox()
    outbox.forget_ids("shop", ["u-1"], NOW)
    before = envelope(1)  # u-1's event, stored at NOW: before (or at) the deletion
    before.body["received_at"] = NOW
    after = envelope(1, receive_count=2)  # u-1 again, stored after the deletion (not suppressed)
    after = Envelope(
        "q-after",
        1,
        {**after.body, "received_at": NOW + 1, "message": {**after.message, "messageId": "m-new"}},
    )
    other = envelope(2)
    other.body["received_at"] = NOW
    deletion = {"type": "delete", "userId": "u-1", "anonymousIds": [], "messageId": "delete-d1"}
    to_hook = Envelope("q-del-a", 1, {**before.body, "message": deletion})
    to_segment = Envelope("q-del-b", 1, {**before.body, "destination_id": "b", "message": deletion})
    service = delivery(
        [hook("a", "hook.example.com"), hook("b", "seg.example.com", "segment")], sender, outbox
    )
    verdicts = service.deliver([before, after, other, to_hook, to_segment])
    assert all(verdict == ACK for verdict in verdicts.values())
    sent = [body.get("messageId") for host, body, _ in sender.sent if host == "hook.example.com"]
    assert sorted(sent) == ["delete-d1", "m-new", "msg-2"]
    assert all(host == "hook.example.com" for host, _, _ in sender.sent)  # a delete is for webhooks
