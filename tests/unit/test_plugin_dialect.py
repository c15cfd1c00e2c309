"""Plugin dialect: keys checked against the published config, values against their value_type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tracking.api_errors import ValidationFailed
from tracking.ingest.dialects.plugin import parse, to_canonical
from tracking.keys import SEP
from tracking.models.config import PluginConfig
from tracking.models.request import RequestInfo

INFO = RequestInfo(received_at=1_700_000_000_000)
CONFIG = PluginConfig.model_validate(
    {
        "tracking": {
            "events": [
                {"key": "clicks", "name": {"en": "Clicks"}, "aggregations": ["increment"]},
                {
                    "key": "emoji",
                    "name": {"en": "Emoji"},
                    "aggregations": ["group_array"],
                    "value_type": "string",
                },
                {
                    "key": "score",
                    "name": {"en": "Score"},
                    "aggregations": ["average"],
                    "value_type": "number",
                },
                {"key": "done", "name": {"en": "Done"}, "aggregations": ["string"], "value_type": "boolean"},
                {"key": "link", "name": {"en": "Link"}, "aggregations": ["array"], "value_type": "url"},
                {"key": "photo", "name": {"en": "Photo"}, "aggregations": ["string"], "value_type": "image"},
                {"key": "mean", "name": {"en": "Mean"}, "aggregations": ["average"]},
                {"key": "free", "name": {"en": "Free"}, "aggregations": ["array"]},
            ]
        }
    }
)


def track(payload: dict[str, Any]):  # type: ignore[no-untyped-def]
    return to_canonical(parse(payload), "plug", CONFIG, INFO)


def one(key: str, value: Any = None, **extra: Any):  # type: ignore[no-untyped-def]
    payload = {"key": key, "user_id": "participant-42", **extra}
    if value is not None:
        payload["value"] = value
    return track(payload)[0]


def rejected(payload: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as exc:
        track(payload)
    return exc.value.details


def test_value_may_be_omitted_for_increment() -> None:
    event = one("clicks")
    assert (event.key, event.value, event.user_id, event.dialect) == (
        "clicks",
        None,
        "participant-42",
        "plugin",
    )


def test_value_is_required_for_other_aggregations() -> None:
    assert rejected({"key": "emoji", "user_id": "u1"})[0]["field"] == "value"


def test_a_key_not_in_the_published_config_is_rejected() -> None:
    details = rejected({"key": "unknown", "user_id": "u1"})
    assert details == [{"field": "key", "message": "key 'unknown' is not declared in the plugin config"}]


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [
        ("emoji", "😍", "😍"),
        ("score", 10, Decimal(10)),
        ("score", 7.5, Decimal("7.5")),
        ("done", True, True),
        ("link", "https://example.com/a?b=c", "https://example.com/a?b=c"),
        ("photo", "http://img.example.com/p.png", "http://img.example.com/p.png"),
        ("mean", 3, Decimal(3)),
        ("free", "anything", "anything"),
        ("free", False, False),
    ],
)
def test_values_of_the_right_type_are_stored(key: str, value: Any, stored: Any) -> None:
    assert one(key, value).value == stored


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("emoji", 5),
        ("score", "10"),
        ("score", True),
        ("done", "yes"),
        ("link", "ftp://example.com/file"),
        ("link", "not a url"),
        ("photo", "javascript:alert(1)"),
        ("mean", "high"),
        ("free", {"nested": "object"}),
        ("free", [1, 2]),
        ("emoji", "x" * 1025),
    ],
)
def test_values_of_the_wrong_type_are_rejected(key: str, value: Any) -> None:
    assert rejected({"key": key, "value": value, "user_id": "u1"})[0]["field"] == "value"


def test_a_batch_of_events_is_accepted_and_may_share_a_user() -> None:
    events = track(
        {"user_id": "u1", "events": [{"key": "clicks"}, {"key": "emoji", "value": "😱", "user_id": "u2"}]}
    )
    assert [(e.key, e.user_id) for e in events] == [("clicks", "u1"), ("emoji", "u2")]
    assert len({e.event_id for e in events}) == 2


def test_a_batch_names_every_bad_event_and_stores_none() -> None:
    details = rejected(
        {"user_id": "u1", "events": [{"key": "clicks"}, {"key": "nope"}, {"key": "score", "value": "x"}]}
    )
    assert [d["field"] for d in details] == ["events[1].key", "events[2].value"]


def test_a_batch_holds_at_most_100_events() -> None:
    assert len(track({"user_id": "u1", "events": [{"key": "clicks"}] * 100})) == 100
    assert rejected({"user_id": "u1", "events": [{"key": "clicks"}] * 101})[0]["field"] == "events"


def test_user_id_is_required_and_may_not_hold_control_characters() -> None:
    assert rejected({"key": "clicks"})[0]["field"] == "user_id"
    assert rejected({"key": "clicks", "user_id": f"a{SEP}b"})[0]["field"] == "user_id"
