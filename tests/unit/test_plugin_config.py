"""Published plugin config: validation (422 material), origins, labels."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tracking.models.config import PluginConfig, normalize_origin

KEY = {
    "key": "handouts",
    "name": {"en": "Handouts", "fr": "Documents"},
    "aggregations": ["group_array", "array"],
}


def config(**overrides: Any) -> dict[str, Any]:
    return {"tracking": {"events": [{**KEY, **overrides}]}}


def error_locations(payload: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as exc:
        PluginConfig.model_validate(payload)
    return [tuple(err["loc"]) for err in exc.value.errors()]


def test_the_contract_example_is_valid() -> None:
    parsed = PluginConfig.model_validate(
        {
            "tracking": {
                "events": [
                    {
                        "name": {"en": "Handouts downloads", "fr": "Nombre de téléchargements"},
                        "key": "handouts",
                        "aggregations": ["group_array", "array", "increment"],
                        "value_type": "string",
                        "delete_existing_events": False,
                    }
                ]
            },
            "allowed_origins": ["https://app.example.com"],
            "write_keys": ["wk_live_123"],
        }
    )
    assert parsed.tracked_key("handouts") is not None
    assert parsed.tracked_key("other") is None


def test_unknown_aggregation_is_rejected() -> None:
    assert error_locations(config(aggregations=["median"]))[0][:5] == (
        "tracking",
        "events",
        0,
        "aggregations",
        0,
    )


def test_no_aggregation_or_a_repeated_one_is_rejected() -> None:
    assert error_locations(config(aggregations=[]))
    assert error_locations(config(aggregations=["array", "array"]))


@pytest.mark.parametrize("name", [{}, {"en": ""}, {"en": "   "}, {"english": "Handouts"}])
def test_empty_or_malformed_names_are_rejected(name: dict[str, str]) -> None:
    assert error_locations(config(name=name))[0][:4] == ("tracking", "events", 0, "name")


def test_bad_value_type_is_rejected() -> None:
    assert error_locations(config(value_type="emoji"))[0][:4] == ("tracking", "events", 0, "value_type")


def test_average_needs_numeric_values() -> None:
    assert error_locations(config(aggregations=["average"], value_type="string"))
    assert PluginConfig.model_validate(config(aggregations=["average"], value_type="number"))


def test_empty_key_and_duplicate_keys_are_rejected() -> None:
    assert error_locations(config(key=""))
    assert error_locations({"tracking": {"events": [KEY, KEY]}})


def test_unknown_fields_are_rejected_rather_than_ignored() -> None:
    assert error_locations(config(aggregation="array"))
    assert error_locations({**config(), "allowed_origin": ["https://a.example"]})


def test_origins_are_normalized_and_matched() -> None:
    parsed = PluginConfig.model_validate(
        {
            "allowed_origins": [
                "HTTPS://App.Example.com:443/",
                "https://*.shop.example",
                "http://localhost:8080",
            ]
        }
    )
    assert parsed.allowed_origins == (
        "https://app.example.com",
        "https://*.shop.example",
        "http://localhost:8080",
    )
    assert parsed.allows_origin("https://app.example.com")
    assert parsed.allows_origin("https://eu.shop.example")
    assert parsed.allows_origin("http://localhost:8080")
    assert not parsed.allows_origin("https://shop.example.evil.com")
    assert not parsed.allows_origin("http://app.example.com")
    assert not parsed.allows_origin("null")


def test_no_allowed_origins_means_any_origin() -> None:
    assert PluginConfig().allows_origin("https://anything.example")


@pytest.mark.parametrize("origin", ["app.example.com", "https://app.example.com/path", "ftp://x.example"])
def test_malformed_origins_are_rejected(origin: str) -> None:
    assert error_locations({"allowed_origins": [origin]})
    assert normalize_origin(origin) is None


def test_write_keys_are_checked() -> None:
    assert error_locations({"write_keys": ["short"]})
    assert error_locations({"write_keys": ["wk_live_123", "wk_live_123"]})


def test_default_currency_must_be_in_the_rate_table() -> None:
    assert PluginConfig.model_validate({"default_currency": "usd"}).default_currency == "USD"
    assert error_locations({"default_currency": "BTC"})


def test_column_label_in_language_falls_back_to_english() -> None:
    key = PluginConfig.model_validate(config()).tracking.events[0]
    assert (key.label("fr"), key.label("fr-CA"), key.label("de"), key.label(None)) == (
        "Documents",
        "Documents",
        "Handouts",
        "Handouts",
    )
