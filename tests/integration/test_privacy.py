"""Privacy through the functions on moto: the sample plugin call from 203.0.113.42 is stored with
203.0.113.0 (the default truncation), and once the plugin respects Do Not Track the same call with
``DNT: 1`` or ``Sec-GPC: 1`` is answered 200 and stored nowhere."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.conftest import sample_event
from tests.integration.conftest import Invoke, stored_events, stored_rejections


def with_header(event: dict[str, Any], name: str) -> dict[str, Any]:
    sent = copy.deepcopy(event)
    sent["headers"][name] = "1"
    sent["multiValueHeaders"][name] = ["1"]
    return sent


def test_the_callers_address_is_stored_truncated(aws: Any, ingest: Invoke, demo_config: Any) -> None:
    event = sample_event("plugin-track")
    assert event["requestContext"]["identity"]["sourceIp"] == "203.0.113.42"
    assert ingest(event)["statusCode"] == 200
    (stored,) = stored_events(aws)
    assert stored["context"]["ip"] == "203.0.113.0"


@pytest.mark.parametrize("header", ["DNT", "Sec-GPC"])
def test_a_plugin_respecting_dnt_stores_nothing_of_a_call_that_asks_not_to_be_tracked(
    aws: Any, ingest: Invoke, query: Invoke, header: str
) -> None:
    put = sample_event("config-put")
    config = json.loads(put["body"])
    config["privacy"] = {"respect_dnt": True, "ip": "none"}
    put["body"] = json.dumps(config)
    assert query(put)["statusCode"] == 200, query(put)["body"]
    answer = ingest(with_header(sample_event("plugin-track"), header))
    assert answer["statusCode"] == 200, answer["body"]
    assert stored_events(aws) == []
    # Only a count is kept: no call, no id, no address.
    (record,) = stored_rejections(aws)
    assert record["counts"] == {"OPTED_OUT": 1}
    assert "rejections" not in record
    assert ingest(sample_event("plugin-track"))["statusCode"] == 200  # without the header: stored
    (stored,) = stored_events(aws)
    assert "ip" not in stored["context"]  # privacy.ip = none
