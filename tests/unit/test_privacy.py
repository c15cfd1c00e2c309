"""IP addresses kept as the plugin's ``privacy.ip`` says (truncated by default) before anything is
stored, in events and in refused calls' text; and a plugin respecting Do Not Track stores nothing of
a call sent with ``DNT: 1`` or ``Sec-GPC: 1``, counting it for the summary's ``opted_out``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from devstack.fakes.control import FakeBudgets
from tests.unit.test_ingest_service import INFO, Ingest, body
from tracking.api_errors import RateLimited, ValidationFailed
from tracking.ingest.privacy import PseudonymousBudgets, kept_address, scrubbed
from tracking.lake.schema import lake_row
from tracking.models.config import PluginConfig
from tracking.models.rejections import OPTED_OUT
from tracking.ratelimit import RateLimiter

SEGMENT_AUTH = "Basic d2tfbGl2ZV8xMjM6"  # wk_live_123:


@pytest.mark.parametrize(
    ("raw", "mode", "kept"),
    [
        ("192.0.2.123", "truncate", "192.0.2.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "truncate", "2001:db8:85a3::"),
        ("::ffff:198.51.100.77", "truncate", "198.51.100.0"),
        ("192.0.2.123", "full", "192.0.2.123"),
        ("192.0.2.123", "none", None),
        ("not an address", "truncate", None),
        (None, "truncate", None),
    ],
)
def test_an_address_is_kept_truncated_whole_or_not_at_all(
    raw: str | None, mode: Any, kept: str | None
) -> None:
    assert kept_address(raw, mode) == kept


def test_addresses_in_a_refused_calls_text_are_truncated_and_nothing_else_changes() -> None:
    text = '{"context": {"ip": "203.0.113.99"}, "at": "12:30:45", "v": "1.2.3", "six": "2001:db8::1"}'
    assert scrubbed(text, "truncate") == (
        '{"context": {"ip": "203.0.113.0"}, "at": "12:30:45", "v": "1.2.3", "six": "2001:db8::"}'
    )
    assert scrubbed(text, "none") == '{"context": {"ip": "-"}, "at": "12:30:45", "v": "1.2.3", "six": "-"}'
    assert scrubbed(text, "full") == text


def with_privacy(ingest: Ingest, **privacy: Any) -> None:
    config = body("config-put")
    config.pop("write_keys")
    config["privacy"] = privacy
    ingest.control.publish("demo-plugin", PluginConfig.model_validate(config), write_key="wk_live_123")


def test_stored_events_keep_the_callers_address_truncated_by_default_or_as_the_plugin_says() -> None:
    ingest = Ingest()
    ingest.service.plugin("demo-plugin", body("plugin-track"), INFO)  # INFO's ip is 192.0.2.1
    payload = body("segment-track")
    payload["context"] = {"ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348"}  # a Segment call names its own
    ingest.service.segment("track", payload, SEGMENT_AUTH, INFO)
    assert sorted(e.context.get("ip") for e in ingest.events.events()) == ["192.0.2.0", "2001:db8:85a3::"]
    # The lake's row is the stored event's: its ip column the kept address.
    assert sorted(lake_row(e)["ip"] for e in ingest.events.events()) == ["192.0.2.0", "2001:db8:85a3::"]

    for mode, kept in (("full", "192.0.2.1"), ("none", None)):
        ingest = Ingest()
        with_privacy(ingest, ip=mode)
        ingest.service.plugin("demo-plugin", body("plugin-track"), INFO)
        (event,) = ingest.events.events()
        assert event.context.get("ip") == kept


def test_a_refused_calls_text_keeps_addresses_as_the_plugin_does() -> None:
    ingest = Ingest()
    call = {"key": "rating", "value": "not a number", "user_id": "u1", "note": "from 192.0.2.77"}
    with pytest.raises(ValidationFailed):
        ingest.service.plugin("demo-plugin", call, INFO)
    (record,) = ingest.rejections.records()
    (rejection,) = record.rejections
    assert "192.0.2.0" in rejection.payload
    assert "192.0.2.77" not in rejection.payload


def test_a_call_with_dnt_or_gpc_is_answered_stored_nowhere_and_counted_as_opted_out() -> None:
    ingest = Ingest()
    with_privacy(ingest, respect_dnt=True)
    opted = replace(INFO, do_not_track=True)
    assert ingest.service.plugin("demo-plugin", body("plugin-track"), opted).accepted == 1
    batch = body("segment-batch")
    assert ingest.service.segment("batch", batch, SEGMENT_AUTH, opted).accepted == len(batch["batch"])
    # Even an invalid call leaves nothing (it is not even read).
    assert ingest.service.plugin(
        "demo-plugin", {"key": "rating", "value": "x", "user_id": "u"}, opted
    ).accepted
    assert ingest.events.events() == []
    counted = sum(record.counts.get(OPTED_OUT, 0) for record in ingest.rejections.records())
    pending = sum(p.pending.get(OPTED_OUT, 0) for p in ingest.service._rejections._plugins.values())
    assert counted + pending == 1 + len(batch["batch"]) + 1
    assert all(record.rejections == () for record in ingest.rejections.records())

    # Without respect_dnt (the default), the same call is stored.
    plain = Ingest()
    assert plain.service.plugin("demo-plugin", body("plugin-track"), opted).accepted == 1
    assert len(plain.events.events()) == 1


def test_the_rate_limit_keeps_a_days_pseudonym_of_an_address_shared_by_containers() -> None:
    budgets = FakeBudgets()
    day = 1_796_601_600_000  # 2026-12-07 00:00 UTC, in ms
    seconds = iter(range(day // 1000 + 10, day // 1000 + 20))
    one, two = (
        RateLimiter(PseudonymousBudgets(budgets, budgets), 3, clock=lambda: next(seconds)) for _ in "12"
    )
    one.check("203.0.113.42")
    two.check("203.0.113.42")
    one.check("203.0.113.42")
    with pytest.raises(RateLimited):  # both containers counted in one window
        two.check("203.0.113.42")
    (name,) = budgets.windows
    assert "203.0.113" not in name
    assert len(name) == 32
    assert budgets.salts["2026-12-07"][1] == day // 1000 + 2 * 86_400  # expires a day after its day

    # The next day the same address has another name (a new salt): yesterday's windows link to nothing.
    later = PseudonymousBudgets(budgets, budgets)
    later.reserve("203.0.113.42", 1, 3, 60_000, day + 86_400_000)
    assert len(budgets.windows) == 2
    assert set(budgets.salts) == {"2026-12-07", "2026-12-08"}
    # A lease is given back to the window it came from, named by the day that window opened.
    later.release("203.0.113.42", budgets.windows[name].start, 1)
    assert budgets.windows[name].used == 2
