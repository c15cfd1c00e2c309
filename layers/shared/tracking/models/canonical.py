"""The one canonical event every dialect is normalized into; nothing after ingest knows dialects."""

from __future__ import annotations

import hashlib
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Kind = Literal["track", "identify", "page", "screen", "group", "alias"]
Dialect = Literal["widget", "plugin", "segment"]
AbGroup = Literal["control", "test"]
# The ecommerce role of an event, whatever its dialect called it; revenue counts only "purchase".
Commerce = Literal[
    "product_viewed",
    "product_clicked",
    "add_to_cart",
    "remove_from_cart",
    "cart_viewed",
    "checkout",
    "purchase",
    "order_updated",
    "refund",
    "cancel",
]
TimeAdjusted = Literal["future", "past"]
Scalar = str | bool | Decimal
# DynamoDB numbers hold 38 significant digits and magnitudes below 1e126; amounts stay far inside.
MAX_AMOUNT = Decimal("1e18")
# Longest text value a key without a ``value_type`` (or of type ``string``) accepts.
STRING_MAX = 1024

# Identifiers become parts of DynamoDB keys joined by a control character, so they may hold none.
IDENTIFIER_PATTERN = r"^[^\u0000-\u001f\u007f]+$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
# DynamoDB caps a partition key at 2,048 bytes and a sort key at 1,024, counted in UTF-8; the keys
# join a plugin, a user and a tracked key, so each is capped in bytes, not characters (512 emoji
# would be 2,048 bytes): an event's partition key (plugin, user) <= 1,025, an aggregate's sort key
# (user, key) <= 769 (tracking.keys).
IDENTIFIER_MAX_BYTES = 512
KEY_MAX_BYTES = 256


# What a DynamoDB number holds exactly: 38 significant digits, magnitudes from 1e-130 to below 1e126.
MAX_DIGITS = 38
MAX_EXPONENT = 125  # |x| < 10**126
MIN_EXPONENT = -130  # |x| >= 10**-130, or zero


def number_problem(text: str) -> str | None:
    """Why the number written ``text`` cannot be stored exactly (the one rule for JSON numbers and
    numeric strings alike), or None."""
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return "not a number"
    if not number.is_finite():
        return f"{text} is not a number"
    if number.is_zero():
        return None
    # Significant digits as written (normalize() would round them to the context's 28).
    digits = "".join(map(str, number.as_tuple().digits)).strip("0")
    if len(digits) > MAX_DIGITS:
        return f"more than {MAX_DIGITS} significant digits"
    if number.adjusted() > MAX_EXPONENT:
        return "larger than 9.99e125"
    if number.adjusted() < MIN_EXPONENT:
        return "smaller than 1e-130"
    return None


def storable_decimal(value: Decimal) -> Decimal:
    """A decimal as it will be stored; ValueError (a pydantic validation error, naming the field)
    when no table could hold it exactly."""
    problem = number_problem(str(value))
    if problem is not None:
        raise ValueError(f"cannot be stored exactly: {problem}")
    return value


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def at_most_bytes(limit: int) -> AfterValidator:
    def check(text: str | None) -> str | None:
        if text is not None and utf8_length(text) > limit:
            raise ValueError(f"at most {limit} bytes of UTF-8")
        return text

    return AfterValidator(check)


Identifier = Annotated[
    str, Field(min_length=1, max_length=512, pattern=IDENTIFIER_PATTERN), at_most_bytes(IDENTIFIER_MAX_BYTES)
]
# The name of a tracked key (a plugin's key, a widget's event type, a Segment event name).
KeyName = Annotated[str, Field(min_length=1, max_length=256), at_most_bytes(KEY_MAX_BYTES)]


# An event id as an item keeps it only to order events of the same instant (an array's values, the
# latest string, a trait's value): ids longer than this are kept as their digest, the same on every
# replay, so an item holding 50 of them stays small whatever ids the clients chose.
RANK_ID_MAX_CHARS = 64


def rank_id(event_id: str) -> str:
    if len(event_id) <= RANK_ID_MAX_CHARS:
        return event_id
    return "#" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def is_identifier(text: str) -> bool:
    return (
        0 < len(text) <= 512
        and utf8_length(text) <= IDENTIFIER_MAX_BYTES
        and _IDENTIFIER.match(text) is not None
    )


# Event time is never trusted blindly: later than this past the service's clock is "future", earlier
# than 2000-01-01 (or not representable at all) is "past"; either becomes the time it was received.
FUTURE_SLACK_MS = 3_600_000
EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z


def capped_time(claimed: int | None, received_at: int) -> tuple[int, TimeAdjusted | None]:
    """The event time to keep for a claimed time (None: the client's time is not representable)."""
    if claimed is None or claimed < EARLIEST_MS:
        return received_at, "past"
    if claimed > received_at + FUTURE_SLACK_MS:
        return received_at, "future"
    return claimed, None


def decimal_of(number: int | float | Decimal) -> Decimal:
    """Exact decimal of a JSON number as the client wrote it (``0.1`` stays ``0.1``)."""
    return number if isinstance(number, Decimal) else Decimal(str(number))


def as_scalar(value: Any) -> Scalar:
    """Any string, finite number or boolean (what a key without ``value_type`` accepts); ValueError
    saying why otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) >= MAX_AMOUNT:
            raise ValueError("must be a finite number below 1e18")
        return decimal_of(value)
    if isinstance(value, str):
        if len(value) > STRING_MAX:
            raise ValueError(f"must be at most {STRING_MAX} characters")
        return value
    raise ValueError("must be a string, a number or a boolean")


class Item(BaseModel):
    """A product line: unit ``value`` in ``currency`` times ``quantity``."""

    model_config = ConfigDict(frozen=True)

    item_id: str | None = None
    value: Decimal | None = None
    quantity: int = 1
    currency: str | None = None


class CanonicalEvent(BaseModel):
    """One accepted tracking call.

    ``event_id`` is unique within the plugin: a retried call (same Segment ``messageId``, same order
    number) gets the same id, so storing it again changes nothing that counts. Fields a dialect has
    no use for keep their defaults, which is also how an event stored before they existed reads.
    """

    model_config = ConfigDict(frozen=True)

    plugin_id: Identifier
    user_id: Identifier
    key: KeyName
    kind: Kind = "track"
    dialect: Dialect
    event_id: str = Field(min_length=1, max_length=700)
    value: Scalar | None = None
    event_time: int  # epoch milliseconds, the time the event happened (skew-corrected where possible)
    received_at: int  # epoch milliseconds, this service's clock
    time_adjusted: TimeAdjusted | None = None  # the client's time was out of bounds (see capped_time)
    ab_group: AbGroup | None = None
    commerce: Commerce | None = None
    items: tuple[Item, ...] = ()
    currency: str | None = None
    total_value_base: Decimal | None = None  # in EUR; None when unknown (never a guess)
    order_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    # Identity, as the Segment spec carries it (the event counts for ``user_id``: userId, else
    # anonymousId).
    anonymous_id: Identifier | None = None
    previous_id: Identifier | None = None  # alias: the id being linked to user_id
    group_id: str | None = None
    name: str | None = None  # page and screen
    category: str | None = None
    # A group call's: the group's; any other: the user's (``context.traits`` and an identify's own)
    traits: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    message_id: str | None = None  # the client's, or one the service assigned
    client_times: dict[str, Any] = Field(default_factory=dict)  # timestamp, sentAt, ... as sent

    @model_validator(mode="after")
    def _time_within_bounds(self) -> CanonicalEvent:
        """Whatever built the event, its time is within the caps (no timestamp can stop aggregation)."""
        at, adjusted = capped_time(self.event_time, self.received_at)
        if at == self.event_time:
            return self
        return self.model_copy(update={"event_time": at, "time_adjusted": adjusted})

    @property
    def identified(self) -> bool:
        """Whether ``user_id`` is a user's id, not an anonymous one: a plugin call's ``user_id``, a
        Segment call's ``userId`` (its ``anonymousId`` alone is anonymous); a widget's token is a
        visitor's anonymous token. An id that has been a user is never linked into another."""
        if self.dialect == "plugin":
            return True
        if self.dialect == "segment":
            return self.anonymous_id is None or self.user_id != self.anonymous_id
        return False

    @property
    def counts_once_per_order(self) -> bool:
        """A purchase carrying an order number is counted once per (plugin, order), whoever sends it."""
        return self.commerce == "purchase" and self.order_id is not None
