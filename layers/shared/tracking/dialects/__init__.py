"""The three tracking dialects: each validates its own request shape and normalizes it into
:class:`~tracking.models.canonical.CanonicalEvent`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tracking.errors import ValidationFailed, validation_details

USER_AGENT_MAX = 1024
URL_MAX = 2048

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What the HTTP layer knows about the call, independent of its dialect."""

    received_at: int  # epoch ms
    ip: str | None = None
    origin: str | None = None
    user_agent: str | None = None
    referer: str | None = None

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


def new_event_id(now_ms: int) -> str:
    """A fresh id for a call that carries none of its own: time-ordered, 64 random bits."""
    return new_event_ids(now_ms, 1)[0]


def new_event_ids(now_ms: int, count: int) -> list[str]:
    """Fresh ids for the events of one request, ordered as the request lists them (so that among
    events of the same instant, "latest" is the one sent last)."""
    request = secrets.token_hex(8)
    return [f"g:{now_ms:011x}{request}{index:04x}" for index in range(count)]


def validate(model: type[M], payload: Any, prefix: str = "") -> M:
    """Validate ``payload`` into ``model``; a failure is a 422 naming every bad field."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        details = validation_details(exc.errors(include_url=False, include_input=False), prefix)
        raise ValidationFailed("The payload failed validation", details) from None


def decimal_of(number: int | float | Decimal) -> Decimal:
    """Exact decimal of a JSON number as the client wrote it (``0.1`` stays ``0.1``)."""
    return number if isinstance(number, Decimal) else Decimal(str(number))
