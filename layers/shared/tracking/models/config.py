"""A plugin's published configuration (the ``livestorm.config.js`` tracking section and access rules)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tracking.models.canonical import IDENTIFIER_PATTERN, KEY_MAX_BYTES, Scalar, as_scalar, at_most_bytes
from tracking.models.currency import RATES_TO_EUR
from tracking.models.request import URL_MAX

Aggregation = Literal["increment", "array", "average", "string", "group_array"]
ValueType = Literal["number", "boolean", "string", "url", "image"]

_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
WRITE_KEY = re.compile(r"^[A-Za-z0-9_\-.:]{8,256}$")


class TrackedKey(BaseModel):
    """One entry of ``tracking.events``: a key plugins track and how the dashboard aggregates it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Annotated[
        str, Field(min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN), at_most_bytes(KEY_MAX_BYTES)
    ]
    name: dict[str, str] = Field(min_length=1, max_length=50)
    aggregations: tuple[Aggregation, ...] = Field(min_length=1, max_length=5)
    value_type: ValueType | None = None
    # Segment-spec calls: the property whose value is tracked.
    value_property: str = Field("value", min_length=1, max_length=128)
    delete_existing_events: bool = False

    @field_validator("name")
    @classmethod
    def _names(cls, names: dict[str, str]) -> dict[str, str]:
        for lang, label in names.items():
            if not _LANG.match(lang):
                raise ValueError(f"{lang!r} is not a language code such as 'en' or 'fr'")
            if not label.strip():
                raise ValueError(f"the {lang!r} name is empty")
            if len(label) > 200:
                raise ValueError(f"the {lang!r} name is longer than 200 characters")
        return names

    @field_validator("aggregations")
    @classmethod
    def _unique(cls, aggregations: tuple[Aggregation, ...]) -> tuple[Aggregation, ...]:
        if len(set(aggregations)) != len(aggregations):
            raise ValueError("each aggregation may be listed once")
        return aggregations

    @model_validator(mode="after")
    def _average_is_numeric(self) -> TrackedKey:
        if "average" in self.aggregations and self.value_type not in (None, "number"):
            raise ValueError(f"'average' needs numeric values, but value_type is {self.value_type!r}")
        return self

    @property
    def needs_value(self) -> bool:
        """Only a pure counter may be tracked without a value."""
        return any(agg != "increment" for agg in self.aggregations)

    @property
    def numeric(self) -> bool:
        return self.value_type == "number" or "average" in self.aggregations

    def accept(self, value: Any, present: bool) -> Scalar | None:
        """The value as stored, or ValueError saying why it does not fit this key's ``value_type``."""
        if not present or value is None:
            if self.needs_value:
                raise ValueError(f"a value is required for the aggregations {', '.join(self.aggregations)}")
            return None
        kind = self.value_type
        if kind == "number" or (kind is None and self.numeric):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("must be a number")
            return as_scalar(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if kind in ("url", "image"):
            if not isinstance(value, str) or len(value) > URL_MAX or not _is_http_url(value):
                raise ValueError(f"must be an http or https URL of at most {URL_MAX} characters")
            return value
        if kind == "string" and not isinstance(value, str):
            raise ValueError("must be a string")
        return as_scalar(value)

    def label(self, lang: str | None) -> str:
        """The column name in ``lang``, else English, else the first given."""
        for candidate in (lang, (lang or "").split("-")[0], "en"):
            if candidate and candidate in self.name:
                return self.name[candidate]
        return next(iter(self.name.values()))


def _is_http_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and " " not in text


class TrackingSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    events: tuple[TrackedKey, ...] = Field(default=(), max_length=200)

    @field_validator("events")
    @classmethod
    def _unique_keys(cls, events: tuple[TrackedKey, ...]) -> tuple[TrackedKey, ...]:
        seen: set[str] = set()
        for event in events:
            if event.key in seen:
                raise ValueError(f"key {event.key!r} is declared twice")
            seen.add(event.key)
        return events


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without default ports; None if it is not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    default = 443 if parts.scheme == "https" else 80
    suffix = f":{port}" if port and port != default else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"


class Privacy(BaseModel):
    """What is kept of a caller: its IP address truncated (IPv4 to /24, IPv6 to /48), whole, or not at
    all; and whether a call sent with ``DNT: 1`` or ``Sec-GPC: 1`` is stored (then it is only counted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ip: Literal["truncate", "full", "none"] = "truncate"
    respect_dnt: bool = False


class PluginConfig(BaseModel):
    """What an admin publishes with ``PUT /v1/plugins/{plugin_id}/config``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking: TrackingSection = TrackingSection()
    # Browser origins allowed to send events for this plugin; empty means any origin.
    # Entries are origins (``https://app.example.com``), subdomain wildcards (``https://*.example.com``)
    # or ``*``.
    allowed_origins: tuple[str, ...] = Field(default=(), max_length=100)
    # Segment-spec write keys that map to this plugin.
    write_keys: tuple[str, ...] = Field(default=(), max_length=20)
    # Currency of prices that arrive without one.
    default_currency: str = "EUR"
    privacy: Privacy = Privacy()
    # Bot events (flagged at ingest) count nowhere unless "include"; the summary reports them as "bots".
    bots: Literal["exclude", "include"] = "exclude"

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        normalized = []
        for origin in origins:
            if origin == "*":
                normalized.append(origin)
                continue
            wildcard = "://*." in origin
            canonical = normalize_origin(origin.replace("://*.", "://wildcard.", 1) if wildcard else origin)
            if canonical is None:
                raise ValueError(f"{origin!r} is not an origin such as 'https://app.example.com'")
            normalized.append(canonical.replace("://wildcard.", "://*.", 1) if wildcard else canonical)
        return tuple(normalized)

    @field_validator("write_keys")
    @classmethod
    def _write_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for key in keys:
            if not WRITE_KEY.match(key):
                raise ValueError("a write key is 8-256 characters of letters, digits and _-.:")
        if len(set(keys)) != len(keys):
            raise ValueError("each write key may be listed once")
        return keys

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, currency: str) -> str:
        if currency.upper() not in RATES_TO_EUR:
            raise ValueError(f"{currency!r} is not one of {', '.join(sorted(RATES_TO_EUR))}")
        return currency.upper()

    def tracked_key(self, key: str) -> TrackedKey | None:
        for event in self.tracking.events:
            if event.key == key:
                return event
        return None

    def allows_origin(self, origin: str) -> bool:
        if not self.allowed_origins or "*" in self.allowed_origins:
            return True
        canonical = normalize_origin(origin)
        if canonical is None:
            return False
        for allowed in self.allowed_origins:
            if allowed == canonical:
                return True
            scheme, _, host = allowed.partition("://*.")
            if host and canonical.startswith(f"{scheme}://") and canonical.endswith(f".{host}"):
                return True
        return False


class PublishedConfig(BaseModel):
    """A config as stored: what was published, when, and when each key was last reset."""

    model_config = ConfigDict(frozen=True)

    plugin_id: str
    config: PluginConfig
    version: int = Field(ge=1)
    published_at: int  # epoch ms
    # key -> epoch ms of the publish that reset it (``delete_existing_events``): events received before
    # it no longer count.
    resets: dict[str, int] = Field(default_factory=dict)

    def reset_at(self, key: str) -> int:
        return self.resets.get(key, 0)
