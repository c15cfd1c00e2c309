"""A destination as an admin configures it, as it is stored, and as any read shows it: its secret or
write key is a ``SecretStr`` from the moment it is parsed (no repr, log line or error prints it) and a
read shows ``****`` and its last 4 characters only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

DESTINATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CallType = Literal["track", "identify", "page", "screen", "group", "alias"]
DestinationType = Literal["webhook", "segment"]
URL_MAX = 2048
SECRET_MIN = 16
SECRET_MAX = 256
FILTER_EVENTS_MAX = 100
# How many destinations one plugin may have: each stored event is one queue message per destination.
DESTINATIONS_MAX = 10
MASK = "****"  # a credential as a read shows it: this, then its last 4 characters

Claim = Literal["claimed", "delivered", "busy"]  # what claiming a message's delivery found

EventName = Annotated[str, Field(min_length=1, max_length=256)]


class DestinationFilter(BaseModel):
    """Which stored events a destination gets: call types, and track event names (widget event types
    and plugin keys are track names). An absent list lets everything through."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: tuple[CallType, ...] | None = Field(default=None, min_length=1, max_length=6)
    events: tuple[EventName, ...] | None = Field(default=None, min_length=1, max_length=FILTER_EVENTS_MAX)

    def passes(self, call_type: str, event_name: str | None) -> bool:
        if self.types is not None and call_type not in self.types:
            return False
        if self.events is not None:
            return call_type == "track" and event_name in self.events
        return True


class DestinationConfig(BaseModel):
    """The body of ``PUT .../destinations/{id}``. A webhook has a ``secret`` (it signs each body); a
    Segment-spec API has a ``write_key`` (HTTP Basic). The URL's address is checked by the route."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    type: DestinationType
    url: str = Field(min_length=8, max_length=URL_MAX)
    secret: SecretStr | None = Field(default=None, min_length=SECRET_MIN, max_length=SECRET_MAX)
    write_key: SecretStr | None = Field(default=None, min_length=1, max_length=SECRET_MAX)
    filter: DestinationFilter = DestinationFilter()
    enabled: bool = True

    @model_validator(mode="after")
    def _credential_of_its_type(self) -> DestinationConfig:
        if self.type == "webhook" and (self.secret is None or self.write_key is not None):
            raise ValueError("a webhook takes a secret (16-256 characters) and no write_key")
        if self.type == "segment" and (self.write_key is None or self.secret is not None):
            raise ValueError("a segment destination takes a write_key and no secret")
        return self

    @property
    def credential(self) -> str:
        found = self.secret if self.type == "webhook" else self.write_key
        return found.get_secret_value() if found is not None else ""


@dataclass(frozen=True, slots=True)
class DestinationRef:
    """Which destination: a plugin's, by its id."""

    plugin_id: str
    destination_id: str


class Destination(BaseModel):
    """A stored destination: its config, whose it is, and since when (events stored before
    ``enabled_at`` are not sent, except by a replay)."""

    model_config = ConfigDict(frozen=True)

    plugin_id: str
    destination_id: str
    config: DestinationConfig
    created_at: int
    updated_at: int
    enabled_at: int | None  # epoch ms it was last enabled; None while disabled
    # The plugin config's ``bots``: bot events are sent only to a plugin that counts them.
    bots: Literal["exclude", "include"] = "exclude"

    @property
    def ref(self) -> DestinationRef:
        return DestinationRef(self.plugin_id, self.destination_id)

    def view(self) -> dict[str, Any]:
        """What every read shows: the credential's last 4 characters, never more."""
        config = self.config
        shown: dict[str, Any] = {
            "destination_id": self.destination_id,
            "type": config.type,
            "url": config.url,
            "filter": config.filter.model_dump(exclude_none=True),
            "enabled": config.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        name = "secret" if config.type == "webhook" else "write_key"
        shown[name] = MASK + config.credential[-4:]
        return shown


@dataclass(frozen=True, slots=True)
class Failure:
    """A message that was not delivered to a destination."""

    message_id: str
    attempts: int
    last_status: int | None
    last_error: str
    at: int  # epoch ms of the last attempt
    message: dict[str, Any]  # the queue message's body, as the delivery reads it

    def listed(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class Counts:
    """A batch's change to a destination's counters."""

    delivered: int = 0
    failed: int = 0
    pending: int = 0
    last_delivered_at: int | None = None
    last_error: str | None = None
    last_error_at: int | None = None


ReplayStatus = Literal["pending", "done", "failed"]


@dataclass(frozen=True, slots=True)
class Replay:
    """A replay of a destination's stored events of ``first``..``last`` (UTC days of event time),
    sent by chunks of the lake's listing of them. ``chunk`` is the next chunk to list (``next_queued``
    the last one whose message was queued), ``position`` where it starts (the engine's own: a key,
    or a query id and a page token); ``listed`` once every chunk was queued. The counters: messages
    queued, and of them sent (delivered), failed, and skipped (a forgotten person's, or the
    destination disabled meanwhile)."""

    ref: DestinationRef
    replay_id: str
    first: str
    last: str
    created_at: int
    chunk: int = 0
    next_queued: int = 0  # the last chunk whose message is known to be queued
    position: str | None = None
    listed: bool = False
    queued: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    error: str | None = None

    @property
    def status(self) -> ReplayStatus:
        if self.error is not None:
            return "failed"
        if self.listed and self.sent + self.failed + self.skipped >= self.queued:
            return "done"
        return "pending"

    def view(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "destination_id": self.ref.destination_id,
            "from": self.first,
            "to": self.last,
            "status": self.status,
            "queued": self.queued,
            "sent": self.sent,
            "failed": self.failed,
            "skipped": self.skipped,
            "error": self.error,
            "created_at": self.created_at,
        }


def tallies(outcomes: Iterable[tuple[str | None, str | None]]) -> dict[str, dict[str, int]]:
    """Per replay, how many of its messages were ``sent``, ``failed`` or ``skipped``, from each
    message's (replay id, outcome); a message of no replay, or with no outcome, counts nowhere."""
    counted: dict[str, dict[str, int]] = {}
    for replay_id, outcome in outcomes:
        if replay_id is not None and outcome is not None:
            counted.setdefault(replay_id, {"sent": 0, "failed": 0, "skipped": 0})[outcome] += 1
    return counted
