"""The query function's JSON replies, one model each: what its routes answer and what
``/openapi.json`` documents."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tracking.models.responses import Reply, absent_if_none


class Health(Reply):
    status: Literal["ok"] = "ok"


class PluginEntry(Reply):
    plugin_id: str


class Plugins(Reply):
    plugins: list[PluginEntry]
    next_cursor: str | None = None


class Published(Reply):
    success: Literal[True] = True
    plugin_id: str
    version: int
    published_at: int = Field(description="epoch milliseconds")


class CreatedKey(Reply):
    """A new dashboard key, shown once: only its hash is stored."""

    key: str
    key_id: str
    plugin_id: str


class KeyEntry(Reply):
    """A dashboard key as listed: never the key itself."""

    key_id: str
    label: str
    last4: str = Field(description="the key's last 4 characters")
    created_at: str = Field(description="ISO 8601, UTC")
    last_used: str | None = Field(description="ISO 8601, UTC, to within 15 minutes; null if never used")


class Keys(Reply):
    keys: list[KeyEntry]


class RevokedKey(Reply):
    key_id: str
    revoked: bool


class Column(Reply):
    key: str
    name: str = Field(description="in the asked language, else English")
    aggregation: str = Field(description="the first listed aggregation")
    aggregations: list[str]
    value_type: str | None


class Columns(Reply):
    columns: list[Column]
    image_origins: list[str] = Field(
        default_factory=list,
        description="the plugin's own origins: the page shows images from these (others on a click)",
    )


class Cell(Reply):
    """One aggregate as the dashboard shows it (see the value shapes per aggregation)."""

    value: Any
    display: str
    total: int | None = absent_if_none("an array's values in all, when it was truncated")
    truncated: bool | None = absent_if_none()


class Row(Reply):
    user_id: str
    values: dict[str, Cell]


class Rows(Reply):
    rows: list[Row]
    next_cursor: str | None


class RecordedRejectionReply(Reply):
    at: str = Field(description="when it was refused, ISO 8601 in UTC")
    dialect: str
    code: str
    message: str
    details: list[dict[str, Any]]
    payload: str = Field(description="what the client sent, cut to 2 KB")


class Rejections(Reply):
    rejections: list[RecordedRejectionReply]
    next_cursor: str | None


class RecentEvents(Reply):
    events: list[dict[str, Any]] = Field(
        description="the latest stored events, newest first, each as in a user's access export"
    )


class FunnelStep(Reply):
    step: str
    users: int
    conversion_from_previous: float | None
    conversion_overall: float | None


class AbGroup(Reply):
    users: int = Field(description="users who joined the group in these days")
    conversions: int = Field(description="of them, those who purchased")
    conversion_rate: float | None
    revenue_eur: int | float = Field(
        description="their purchases less refunds, in EUR (never below zero for a user)"
    )


class AbComparison(Reply):
    """Test against control; each ``null`` while either group has no users."""

    difference: float | None = Field(description="conversion rate of test minus control's, as a fraction")
    ci95: list[float] | None = Field(description="[low, high]: its 95 % confidence interval (unpooled error)")
    p_value: float | None = Field(description="two-sided, of the two-proportion z-test (pooled error)")


class AbTest(Reply):
    control: AbGroup
    test: AbGroup
    comparison: AbComparison


class SeriesDay(Reply):
    day: str = Field(json_schema_extra={"format": "date"})
    events: int
    users: int = Field(description="distinct users with an event of the key that day (exact)")


class Series(Reply):
    plugin_id: str
    first_day: str = Field(alias="from", json_schema_extra={"format": "date"})
    last_day: str = Field(alias="to", json_schema_extra={"format": "date"})
    series: dict[str, list[SeriesDay]] = Field(description="per key, every day from..to (zero-filled)")


class Summary(Reply):
    chatbot_id: str
    first_day: str = Field(alias="from", json_schema_extra={"format": "date"})
    last_day: str = Field(alias="to", json_schema_extra={"format": "date"})
    counts: dict[str, int] = Field(description="events per key, the 500 most frequent keys")
    other_counts: dict[str, int] | None = absent_if_none(
        description="past the 500 most frequent keys: how many more keys, and their events in all"
    )
    funnel: list[FunnelStep]
    ab_test: AbTest
    revenue_eur: int | float
    rejected: dict[str, int] = Field(description="calls refused in these days, per error code")
    bots: int = Field(description="bot events stored in these days, counted in nothing else (config bots)")
    opted_out: int = Field(
        description="calls not stored as they were sent with DNT or GPC (privacy.respect_dnt)"
    )


class Person(Row):
    """One user's row and profile: ``user_id`` is the user the asked id belongs to."""

    merged_into: str | None = absent_if_none(description="set when the asked id was linked into this user")
    traits: dict[str, Any] = Field(description="each trait's latest value by event time")
    anonymous_ids: list[str] = Field(description="ids linked into this user")
    groups: dict[str, dict[str, Any]] = Field(description="group ids with their traits")
    first_seen: str | None = Field(description="ISO 8601, UTC")
    last_seen: str | None = Field(description="ISO 8601, UTC")
    next_cursor: str | None = absent_if_none(
        description="more keys than one answer holds: pass it as cursor for the next keys' values"
    )


class Deletion(Reply):
    deletion_id: str
    status: Literal["pending", "done"]
    removed: dict[str, int] | None = absent_if_none(description="what was removed so far")


class Suppression(Reply):
    user_id: str
    suppressed: bool


class BreakdownRow(Reply):
    value: str | None = Field(description="the field's value (null: the event does not carry it)")
    events: int
    users: int = Field(description="distinct users with such an event")


class BreakdownOther(Reply):
    events: int
    users: int


class BreakdownReply(Reply):
    event: str
    by: str
    rows: list[BreakdownRow] = Field(description="the 50 values with the most events, most first")
    other: BreakdownOther = Field(description="every other value, summed")


class Cohort(Reply):
    start: str = Field(json_schema_extra={"format": "date"}, description="the cohort's first period")
    users: int
    returned: list[int] = Field(description="users of the cohort with an event k periods later (k = 0 first)")


class RetentionReply(Reply):
    period: Literal["day", "week"]
    cohorts: list[Cohort]


class QueryRunning(Reply):
    """The lake query is still running: ask queries/{query_id} for its answer."""

    query_id: str
    status: Literal["running"] = "running"


class DestinationShown(Reply):
    """A destination as every read shows it: its credential as ``****`` and its last 4 characters."""

    destination_id: str
    type: Literal["webhook", "segment"]
    url: str
    filter: dict[str, list[str]]
    enabled: bool
    secret: str | None = Field(None, description="webhook: **** and the secret's last 4 characters")
    write_key: str | None = Field(None, description="segment: **** and the write key's last 4 characters")
    created_at: int = Field(description="epoch milliseconds")
    updated_at: int = Field(description="epoch milliseconds")
    delivered: int
    failed: int
    pending: int
    last_delivered_at: int | None = Field(description="epoch milliseconds")
    last_error: str | None


class Destinations(Reply):
    destinations: list[DestinationShown]


class DeletedDestination(Reply):
    destination_id: str
    deleted: bool


class FailureEntry(Reply):
    messageId: str
    attempts: int
    last_status: int | None
    last_error: str
    at: int = Field(description="epoch milliseconds of the last attempt")


class Failures(Reply):
    failures: list[FailureEntry]
    next_cursor: str | None = None


class RetriedFailures(Reply):
    """The failures queued again; ``remaining``: call again for the rest."""

    retried: int
    remaining: bool


class ReplayStarted(Reply):
    """A replay began: ask ``GET .../replays/{replay_id}`` how far it got."""

    replay_id: str


class ReplayShown(Reply):
    """A replay: ``pending`` until every event of the range was queued and sent, failed or skipped
    (a forgotten person's, or the destination disabled meanwhile); ``failed`` if the lake could not
    list them (``error`` says why)."""

    replay_id: str
    destination_id: str
    from_: str = Field(alias="from")
    to: str
    status: Literal["pending", "done", "failed"]
    queued: int
    sent: int
    failed: int
    skipped: int
    error: str | None
    created_at: int
