"""What the HTTP layer knows of a call, whatever its dialect, and the ids this service gives events."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

USER_AGENT_MAX = 1024
URL_MAX = 2048
# Event ids this service generates start so; a client's own ids (``m:``, ``o:``, ``h:``) never do.
GENERATED_PREFIX = "g:"
# An event id is a DynamoDB sort key: at most 1,024 bytes of UTF-8.
CLIENT_ID_MAX_BYTES = 1024


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the HTTP layer knows about the call, independent of its dialect."""

    received_at: int  # epoch ms
    ip: str | None = None
    origin: str | None = None
    user_agent: str | None = None
    referer: str | None = None
    do_not_track: bool = False  # the call was sent with DNT: 1 or Sec-GPC: 1

    def context(self) -> dict[str, Any]:
        context: dict[str, Any] = {}
        if self.ip:
            context["ip"] = self.ip
        if self.user_agent:
            context["user_agent"] = self.user_agent[:USER_AGENT_MAX]
        if self.origin:
            context["origin"] = self.origin[:URL_MAX]
        if self.referer:
            context["referer"] = self.referer[:URL_MAX]
        return context


def is_client_named(event_id: str) -> bool:
    """An event the client named (its messageId, order, content digest) is keyed by that id within
    its plugin; the others, by this service's ids, sit in their user's partition."""
    return not event_id.startswith(GENERATED_PREFIX)


def client_event_id(prefix: str, chosen: str) -> str:
    """The id of an event the client named (``o`` an order, ``m`` a messageId): ``prefix:chosen``; or,
    when that is too long for a DynamoDB key, ``prefix#`` and the name's SHA-256, the same on every
    repeat. A ``#`` never follows the prefix of an id kept as sent, so the two cannot collide."""
    raw = chosen.encode("utf-8", "surrogatepass")
    if len(prefix) + 1 + len(raw) <= CLIENT_ID_MAX_BYTES:
        return f"{prefix}:{chosen}"
    return f"{prefix}#{hashlib.sha256(raw).hexdigest()}"


def new_event_ids(now_ms: int, count: int) -> list[str]:
    """Fresh ids for the events of one request, ordered as the request lists them (so that among
    events of the same instant, "latest" is the one sent last): time-ordered, 64 random bits."""
    request = secrets.token_hex(8)
    return [f"{GENERATED_PREFIX}{now_ms:011x}{request}{index:04x}" for index in range(count)]
