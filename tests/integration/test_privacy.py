"""Privacy through the functions on moto: the sample plugin call from 203.0.113.42 is stored with
203.0.113.0 (the default truncation), and once the plugin respects Do Not Track the same call with
``DNT: 1`` or ``Sec-GPC: 1`` is answered 200 and stored nowhere."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from tests.conftest import sample_event
from tests.helpers import api_event
from tests.integration.conftest import Invoke, new_container, scan, stored_events, stored_rejections
from tests.integration.faults import dynamodb_fails


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


FULL = "203.0.113.42"
NAMED = "198.51.100.77"  # an address a Segment call names itself


def test_no_full_address_is_written_to_any_table_or_log(
    aws: Any, function_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every kind of call from one address (stored, refused, throttled, failed storage, a Segment call
    naming another address, one asking not to be tracked) leaves neither address whole anywhere: in
    no item of any table (the rate limiter's windows included) and in no line the function logs."""
    function_env(RATE_LIMIT_PER_MINUTE="6", POWERTOOLS_LOG_LEVEL="DEBUG")
    query = new_container("QueryFunction")
    put = sample_event("config-put")
    config = json.loads(put["body"])
    config["privacy"] = {"respect_dnt": True}
    put["body"] = json.dumps(config)
    assert query(put)["statusCode"] == 200
    ingest = new_container("IngestFunction")
    track = "/v1/plugins/demo-plugin/track"
    good = {"key": "handouts", "value": "x", "user_id": "participant-1"}
    segment = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u-1",
        "messageId": "m-1",
        "context": {"ip": NAMED},
    }
    basic = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}
    answers = [
        ingest(api_event("POST", track, good, ip=FULL))["statusCode"],
        ingest(api_event("POST", track, {**good, "value": {"x": [1] * 5}}, ip=FULL))["statusCode"],
        ingest(api_event("POST", "/v1/track", segment, headers=basic, ip=FULL))["statusCode"],
        ingest(api_event("POST", track, good, headers={"DNT": "1"}, ip=FULL))["statusCode"],
    ]
    with dynamodb_fails("TransactWriteItems"), dynamodb_fails("PutItem"):
        answers.append(ingest(api_event("POST", track, good, ip=FULL))["statusCode"])
    answers += [ingest(api_event("POST", track, good, ip=FULL))["statusCode"] for _ in range(8)]
    assert answers[:5] == [200, 422, 200, 200, 503], answers
    assert 429 in answers[5:]  # the limit was reached: its window was written
    written = [
        json.dumps(item, default=repr)
        for table in aws.list_tables()["TableNames"]
        for item in scan(aws, table)
    ]
    assert any("203.0.113.0" in text for text in written)  # the kept, truncated address
    logs = capsys.readouterr()
    for address in (FULL, NAMED):
        assert not [text for text in written if address in text], address
        assert address not in logs.out + logs.err
