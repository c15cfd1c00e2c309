"""Ingest through its ports: each dialect's sample call (events/) stored by ``IngestService`` into the
fake events table, then counted by the aggregator from the fake stream; retries, refusals, limits and
storage failures as the contract says. The same calls through the handler on moto are in
tests/integration."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.fakes.aggregates import FakeAggregates
from devstack.fakes.control import FakeBudgets, FakeControl
from devstack.fakes.events import FakeEvents, FakeRejections
from devstack.fakes.stream import FakeStream
from tracking.aggregate.aggregator import Aggregator
from tracking.api_errors import Forbidden, RateLimited, Unauthorized, ValidationFailed
from tracking.ingest.configs import PluginDirectory
from tracking.ingest.rejections import RejectionLog
from tracking.ingest.service import IngestService
from tracking.models.config import PluginConfig
from tracking.models.request import RequestInfo
from tracking.models.storage_failures import StorageUnavailable
from tracking.ratelimit import RateLimiter

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = 1_764_016_800_000
ORIGIN = "https://app.example.com"


def body(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(json.loads((EVENTS / f"{name}.json").read_text())["body"])
    return parsed


@dataclass
class Ingest:
    control: FakeControl = field(default_factory=FakeControl)
    events: FakeEvents = field(default_factory=FakeEvents)
    aggregates: FakeAggregates = field(default_factory=FakeAggregates)
    budgets: FakeBudgets = field(default_factory=FakeBudgets)
    per_minute: int = 120
    per_write_key: int = 60_000

    def __post_init__(self) -> None:
        config = body("config-put")
        write_keys = config.pop("write_keys")
        self.control.publish("demo-plugin", PluginConfig.model_validate(config), write_key=write_keys[0])
        self.rejections = FakeRejections(self.events.table)
        self.service = IngestService(
            directory=PluginDirectory(self.control, 0),
            sink=self.events,
            limiter=RateLimiter(self.budgets, self.per_minute, clock=lambda: NOW / 1000),
            key_limiter=RateLimiter(self.budgets, self.per_write_key, max_lease=64, clock=lambda: NOW / 1000),
            rejections=RejectionLog(self.rejections, clock=lambda: NOW / 1000),
            default_plugin_id="default-bot",
            clock=lambda: NOW / 1000,
        )

    def counted(self) -> Counter[tuple[str, str, str]]:
        """What the aggregator makes of everything stored so far."""
        aggregator = Aggregator(
            self.aggregates, self.control, index=self.events, rejections=self.rejections, workers=1
        )
        assert FakeStream(self.events.table).deliver(aggregator.process) == {}
        return Counter({state.identity: state.count for state in self.aggregates.stored()})


INFO = RequestInfo(received_at=NOW, ip="192.0.2.1", origin=ORIGIN, user_agent="test")


def test_a_plugin_call_is_stored_once_and_counted() -> None:
    ingest = Ingest()
    assert ingest.service.plugin("demo-plugin", body("plugin-track"), INFO).accepted == 1
    assert ingest.counted() == Counter({("demo-plugin", "emoji-reactions", "participant-42"): 1})


def test_a_plugin_call_from_an_origin_not_allowed_stores_nothing() -> None:
    ingest = Ingest()
    elsewhere = RequestInfo(received_at=NOW, origin="https://evil.example")
    with pytest.raises(Forbidden):
        ingest.service.plugin("demo-plugin", body("plugin-track"), elsewhere)
    assert ingest.events.events() == []


def test_a_widget_purchase_sent_twice_is_stored_once() -> None:
    ingest = Ingest()
    first = ingest.service.widget(body("widget-track"), INFO)
    again = ingest.service.widget(body("widget-track"), INFO)  # its order number names it
    assert first.accepted == again.accepted >= 1
    stored = ingest.events.events()
    assert len(stored) == first.accepted
    assert {event.plugin_id for event in stored} == {"demo-bot"}
    assert sum(ingest.counted().values()) == first.accepted


def test_a_segment_batch_retried_stores_each_message_once() -> None:
    ingest = Ingest()
    auth = "Basic d2tfbGl2ZV8xMjM6"  # wk_live_123:
    first = ingest.service.segment("batch", body("segment-batch"), auth, INFO)
    again = ingest.service.segment("batch", body("segment-batch"), auth, INFO)
    assert first.accepted == again.accepted == len(body("segment-batch")["batch"])
    assert len(ingest.events.events()) == first.accepted
    assert sum(ingest.counted().values()) == sum(
        1 for e in ingest.events.events() if e.kind in {"track", "page", "screen"}
    )


def test_rudderstacks_beacon_with_an_empty_user_id_is_anonymous() -> None:
    ingest = Ingest()
    payload = body("rudderstack-beacon")
    outcome = ingest.service.segment("batch", payload, None, INFO, query_write_key="wk_live_123")
    assert outcome.accepted == len(payload["batch"])
    assert all(event.user_id == event.anonymous_id for event in ingest.events.events())


def test_an_unknown_write_key_stores_nothing() -> None:
    ingest = Ingest()
    with pytest.raises(Unauthorized):
        ingest.service.segment("batch", body("segment-batch"), "Basic bm9wZTo=", INFO)
    assert ingest.events.events() == []


def test_one_unstorable_number_refuses_its_call_only_and_records_it() -> None:
    ingest = Ingest()
    payload = body("segment-batch")
    payload["batch"][0]["properties"]["price"] = 1e200
    outcome = ingest.service.segment("batch", payload, "Basic d2tfbGl2ZV8xMjM6", INFO)
    assert outcome.accepted == len(payload["batch"]) - 1
    assert [rejection.index for rejection in outcome.rejected] == [0]
    assert len(ingest.events.events()) == outcome.accepted
    (record,) = ingest.rejections.records()
    assert record.plugin_id == "demo-plugin"


def test_an_invalid_single_call_is_refused_and_recorded() -> None:
    ingest = Ingest()
    with pytest.raises(ValidationFailed):
        ingest.service.plugin(
            "demo-plugin", {"key": "rating", "value": "not a number", "user_id": "u1"}, INFO
        )
    assert ingest.events.events() == []
    assert [record.plugin_id for record in ingest.rejections.records()] == ["demo-plugin"]


def test_a_storage_failure_is_raised_and_leaves_nothing_the_retry_would_count_twice() -> None:
    ingest = Ingest()
    payload = {"events": [{"key": "emoji-reactions", "value": "👍", "user_id": "u1"}] * 3}
    ingest.events.table.fail_next()
    with pytest.raises(StorageUnavailable):
        ingest.service.plugin("demo-plugin", payload, INFO)
    assert ingest.events.events() == []  # all or none
    assert ingest.service.plugin("demo-plugin", payload, INFO).accepted == 3
    assert ingest.counted() == Counter({("demo-plugin", "emoji-reactions", "u1"): 3})


def test_an_ip_over_its_budget_is_refused_before_anything_is_read() -> None:
    ingest = Ingest(per_minute=3)
    for _ in range(3):
        ingest.service.admit("192.0.2.7")
    with pytest.raises(RateLimited):
        ingest.service.admit("192.0.2.7")
    ingest.service.admit("192.0.2.8")  # another IP has its own budget


def test_a_segment_source_with_a_known_write_key_is_metered_per_key_not_per_ip() -> None:
    ingest = Ingest(per_minute=3, per_write_key=50)
    known, unknown = "Basic d2tfbGl2ZV8xMjM6", "Basic bm9wZTo="  # wk_live_123: and nope:
    for _ in range(50):  # a server's source behind one IP: far past the IP's 3 a minute
        ingest.service.admit_source("192.0.2.7", known)
    with pytest.raises(RateLimited):  # then its own budget is spent, whatever IP it sends from
        ingest.service.admit_source("192.0.2.99", known)
    for _ in range(3):  # a key nobody has: the sender's IP pays, as a widget's would
        ingest.service.admit_source("192.0.2.8", unknown)
    with pytest.raises(RateLimited):
        ingest.service.admit_source("192.0.2.8", unknown)
    with pytest.raises(RateLimited):  # and a widget call from that IP is over the same budget
        ingest.service.admit("192.0.2.8")
    for _ in range(3):  # no Authorization (analytics.js in a browser): per IP
        ingest.service.admit_source("192.0.2.9", None)
    with pytest.raises(RateLimited):
        ingest.service.admit_source("192.0.2.9", None)


def test_a_suppressed_ids_calls_are_answered_and_leave_nothing() -> None:
    ingest = Ingest()
    ingest.control.suppress_ids("demo-plugin", ["participant-42"])
    assert ingest.service.plugin("demo-plugin", body("plugin-track"), INFO).accepted == 1
    assert ingest.events.events() == []
