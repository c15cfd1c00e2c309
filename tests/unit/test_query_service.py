"""The query service through its ports (fakes): publishing configs, keys and who reads what, pages of
rows, a person, the CSV, the summary and series, refused calls, deletions. Data reaches the fake
aggregates table the way it does in production: events stored, then the aggregator over the fake
stream. The same routes through the handler on moto are in tests/integration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack.fakes.aggregates import FakeAggregates
from devstack.fakes.control import FakeBudgets, FakeControl
from devstack.fakes.events import FakeDeletions, FakeEvents, FakeRejections
from devstack.fakes.stream import FakeStream
from devstack.local.builders import canonical
from tests.helpers import identify_call, segment_call
from tracking.aggregate.aggregator import Aggregator
from tracking.api_errors import Forbidden, NotFound, RateLimited, Unauthorized, Unavailable, ValidationFailed
from tracking.keys import user_suffix
from tracking.models.canonical import CanonicalEvent
from tracking.models.people import suppression_hash
from tracking.models.rejections import Rejection, RejectionRecord
from tracking.query.admin import PluginAdmin
from tracking.query.auth import QUOTA_WINDOW_MS, ApiKeyAuth, StaticAdminKey
from tracking.query.requests import (
    ExportQuery,
    PageQuery,
    Reading,
    RowsQuery,
    SeriesQuery,
    SummaryQuery,
    UserQuery,
)
from tracking.query.service import QueryService
from tracking.ratelimit import RateLimiter

NOW = 1_764_016_800_000
ADMIN = "admin-key-for-unit-tests"
CONFIG = {
    "tracking": {
        "events": [
            {
                "key": "emoji",
                "name": {"en": "Emoji", "fr": "Émoji"},
                "aggregations": ["group_array", "increment"],
            },
            {"key": "rating", "name": {"en": "Rating"}, "aggregations": ["average"], "value_type": "number"},
        ]
    },
    "write_keys": ["wk_unit_1"],
}


@dataclass
class Deployment:
    control: FakeControl = field(default_factory=FakeControl)
    events: FakeEvents = field(default_factory=FakeEvents)
    aggregates: FakeAggregates = field(default_factory=FakeAggregates)
    quota: int = 0
    now: int = NOW

    def __post_init__(self) -> None:
        self.rejections = FakeRejections(self.events.table)
        self.deletions = FakeDeletions(self.events.table)
        limiter = RateLimiter(
            FakeBudgets(), self.quota, window_ms=QUOTA_WINDOW_MS, clock=lambda: self.now / 1000
        )
        auth = ApiKeyAuth(
            StaticAdminKey(ADMIN),
            self.control,
            quota=limiter if limiter.enabled else None,
            wall_clock=lambda: self.now / 1000,
        )
        self.service = QueryService(
            self.control,
            self.aggregates,
            auth,
            self.rejections,
            events=self.events,
            deletions=self.deletions,
            clock=lambda: self.now,
        )
        self.admin = PluginAdmin(self.control, lambda: self.now)

    def reading(self, plugin_id: str, key: str = ADMIN) -> Reading:
        return self.service.reading(key, plugin_id)

    def track(self, events: list[CanonicalEvent]) -> None:
        self.events.put_all(events)
        aggregator = Aggregator(
            self.aggregates, self.control, index=self.events, rejections=self.rejections, workers=1
        )
        assert FakeStream(self.events.table).deliver(aggregator.process) == {}


def published(deployment: Deployment, plugin_id: str = "p1", config: dict[str, Any] | None = None) -> None:
    deployment.admin.publish(deployment.service.managed(ADMIN, plugin_id), config or CONFIG)


def emoji(user: str, n: int, value: str = "😍") -> CanonicalEvent:
    return canonical("emoji", value, user=user, at=NOW + n, event_id=f"g:{user}-{n:06d}")


def test_publishing_versions_a_config_and_guards_write_keys() -> None:
    deployment = Deployment()
    published(deployment)
    published(deployment)
    assert deployment.admin.config("p1").version == 2
    with pytest.raises(ValidationFailed) as taken:
        published(deployment, "p2")  # wk_unit_1 belongs to p1
    assert taken.value.details == [{"field": "write_keys[0]", "message": "already in use"}]
    with pytest.raises(ValidationFailed):
        published(deployment, "p3", {"tracking": {"events": [{"key": "x"}]}})
    assert deployment.control.get_config("p3") is None


def test_a_concurrent_publish_is_a_503_to_publish_again() -> None:
    deployment = Deployment()
    published(deployment)
    real_save = deployment.control.save_config

    def someone_else_first(new: Any, previous: Any) -> None:
        real_save(new.model_copy(update={"version": new.version}), previous)  # the other publish
        real_save(new, previous)  # ours, from the same version: refused

    deployment.control.save_config = someone_else_first  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        published(deployment)


def test_a_dashboard_key_reads_its_plugin_only_and_is_refused_once_revoked() -> None:
    deployment = Deployment()
    published(deployment)
    published(deployment, "p2", {"tracking": CONFIG["tracking"]})
    key, stored = deployment.admin.create_key("p1", "marketing")
    assert [k.last4 for k in deployment.admin.keys("p1")] == [key[-4:]]
    assert key not in repr(deployment.control.keys)  # only its hash is stored
    assert deployment.reading("p1", key).plugin_id == "p1"
    with pytest.raises(Forbidden):
        deployment.reading("p2", key)
    with pytest.raises(Forbidden):
        deployment.service.managed(key, "p1")  # a dashboard key manages nothing
    assert deployment.service.plugins(deployment.service.caller(key), PageQuery()) == (["p1"], None)
    deployment.admin.revoke_key("p1", stored.key_id)
    with pytest.raises(Unauthorized):
        deployment.reading("p1", key)


def test_each_key_has_a_daily_quota() -> None:
    deployment = Deployment(quota=3)
    published(deployment)  # one request of the admin's
    deployment.reading("p1")
    deployment.reading("p1")
    with pytest.raises(RateLimited):
        deployment.reading("p1")


def test_pages_of_rows_list_each_user_once() -> None:
    deployment = Deployment()
    published(deployment)
    deployment.track([emoji(f"user-{n}", n) for n in range(7)] + [emoji("user-3", 100, "🎉")])
    seen: list[str] = []
    cursor: dict[str, str] = {"limit": "2"}
    while True:
        reading = deployment.reading("p1")
        page = deployment.service.rows(reading, RowsQuery.read(cursor, reading.published))
        seen += [row["user_id"] for row in page.rows]
        if page.next_cursor is None:
            break
        cursor = {"limit": "2", "cursor": page.next_cursor}
    # In key order: by suffix (a hash of the user), then by user within a suffix.
    assert seen == sorted((f"user-{n}" for n in range(7)), key=lambda user: (user_suffix(user), user))
    config = deployment.reading("p1").published
    with pytest.raises(ValidationFailed):
        RowsQuery.read({"limit": "0"}, config)
    with pytest.raises(ValidationFailed) as unlisted:  # not one of its listed: named before the limit
        RowsQuery.read({"aggregation.emoji": "average", "limit": "0"}, config)
    assert [detail["field"] for detail in unlisted.value.details] == ["aggregation.emoji"]


def test_a_linked_id_answers_its_users_row_and_the_csv_has_every_user() -> None:
    deployment = Deployment()
    published(deployment)
    link = identify_call("alice", "anon-1", at=NOW, event_id="m-link", traits={"plan": "pro"})
    visits = [
        segment_call("emoji", "anon-1", value="👏", at=NOW + 1, event_id="m-a", anonymous_id="anon-1"),
        emoji("alice", 2),
        emoji("bob", 3),
    ]
    deployment.track([link, *visits])
    view = deployment.service.user(deployment.reading("p1"), "anon-1", UserQuery())
    assert view.user_id == "alice"
    assert view.values["emoji"]["value"]["total"] == 2  # both ids' events
    assert view.person.traits["plan"].value == "pro"
    with pytest.raises(NotFound):
        deployment.service.user(deployment.reading("p1"), "nobody", UserQuery())
    part = deployment.service.export(deployment.reading("p1"), ExportQuery(lang="fr"))
    lines = part.text.lstrip("\ufeff").splitlines()
    assert lines[0] == "user_id,Émoji,Rating,traits.plan"
    assert [line.split(",")[0] for line in lines[1:]] == ["alice", "bob"]
    assert part.next_cursor is None


def test_the_summary_and_series_add_up_the_rollups() -> None:
    deployment = Deployment()
    steps = ["visitor", "bot_open", "convo_started"]
    deployment.track(
        [
            canonical(
                step,
                None,
                user=f"v{n}",
                plugin="bot",
                at=NOW + n * 10 + depth,
                event_id=f"g:{n}{depth}",
                dialect="widget",
            )
            for n in range(3)
            for depth, step in enumerate(steps[: n + 1])
        ]
    )
    bot = deployment.service.reader(ADMIN, "bot")
    summary = deployment.service.summary(bot, SummaryQuery(first="2025-11-24", last="2025-11-24"))
    assert [step["users"] for step in summary["funnel"][:4]] == [3, 2, 1, 0]
    assert summary["counts"] == {"visitor": 3, "bot_open": 2, "convo_started": 1}
    series = deployment.service.series(
        bot, SeriesQuery(keys="visitor", first="2025-11-23", last="2025-11-24")
    )
    assert [(d["events"], d["users"]) for d in series["series"]["visitor"]] == [(0, 0), (3, 3)]
    with pytest.raises(NotFound):
        deployment.service.summary(deployment.service.reader(ADMIN, "never-seen"), SummaryQuery())


def test_refused_calls_page_newest_first() -> None:
    deployment = Deployment()
    published(deployment)
    for n in range(5):
        deployment.rejections.record(
            RejectionRecord(
                plugin_id="p1",
                at=NOW + n,
                dialect="plugin",
                rejections=(Rejection("VALIDATION", f"call {n}", (), "{}"),),
                counts={"VALIDATION": 1},
            )
        )
    first = deployment.service.rejections("p1", PageQuery(limit=3))
    rest = deployment.service.rejections("p1", PageQuery(limit=3, cursor=first.next_cursor))
    messages = [found.rejection.message for found in [*first.rejections, *rest.rejections]]
    assert messages == [f"call {n}" for n in reversed(range(5))]
    assert rest.next_cursor is None


def test_forgetting_suppresses_every_id_of_the_person_and_starts_a_deletion() -> None:
    deployment = Deployment()
    published(deployment)
    link = identify_call("carol", "anon-c", at=NOW, event_id="m-c")
    deployment.track([link, emoji("carol", 1)])
    step = deployment.service.forget("p1", "carol", suppress=True)
    assert set(step.ids) == {"carol", "anon-c"}
    people = deployment.control.people["p1"]
    assert people.suppressed == {suppression_hash("carol"), suppression_hash("anon-c")}
    assert deployment.service.deletion("p1", step.deletion_id).step == 0
    deployment.service.lift_suppression("p1", "carol")
    assert deployment.control.people["p1"].suppressed == {suppression_hash("anon-c")}
    with pytest.raises(NotFound):
        deployment.service.deletion("p1", "del_unknown")


def test_a_chatbot_without_a_config_reads_with_the_widgets_columns() -> None:
    deployment = Deployment()
    deployment.track(
        [canonical("visitor", None, user="v1", plugin="shop-bot", at=NOW, event_id="g:v1", dialect="widget")]
    )
    columns, _ = deployment.service.columns(deployment.reading("shop-bot"), None)
    assert "visitor" in {column["key"] for column in columns}
    assert deployment.service.plugins(deployment.service.caller(ADMIN), PageQuery())[0] == ["shop-bot"]
    with pytest.raises(NotFound):
        deployment.reading("no-such-bot")
