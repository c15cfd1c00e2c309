"""The largest items the worst calls the contract allows make (issue 23, ``scale.max_item_kb``): each
item kind driven to its bound through the real Segment parser, ingest service and aggregator on the
in-memory fakes (which size every item with storage's own builders), one stream batch of 100 at a
time. The control table's items (config, people item, suppressions) are measured against moto and
DynamoDB Local by ``tests/integration/test_item_bounds.py``, not here."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.fakes.aggregates import FakeAggregates
from devstack.fakes.control import FakeBudgets, FakeControl
from devstack.fakes.events import FakeEvents, FakeRejections
from devstack.fakes.stream import FakeStream
from tracking.aggregate.aggregator import Aggregator
from tracking.aggregate.ports import CurrentConfigs
from tracking.ingest.configs import PluginDirectory
from tracking.ingest.rejections import RejectionLog
from tracking.ingest.service import IngestService
from tracking.keys import PROFILE_PART_KIND
from tracking.models.config import PluginConfig
from tracking.models.request import RequestInfo
from tracking.ratelimit import RateLimiter
from tracking.storage.dynamo import item_size

PLUGIN = "worst-plugin"
WRITE_KEY = "wk_worst_calls"
AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
CONFIG = {
    "tracking": {
        "events": [
            {
                "key": "long",
                "name": {"en": "Long"},
                "aggregations": ["array", "string", "group_array", "increment"],
                "value_type": "string",
            }
        ]
    },
    "write_keys": [WRITE_KEY],
}
NOW_MS = 1_764_016_800_000
LONGEST_ID = 256  # characters of a messageId the tests drive (a longer one is kept as its digest)


def _call(kind: str, user: str, tag: str, **fields: Any) -> dict[str, Any]:
    """A call of the user, named by the longest messageId the tests drive, ``tag`` first."""
    return {"type": kind, "userId": user, "messageId": tag + "m" * (LONGEST_ID - len(tag)), **fields}


def _longest_values() -> Iterator[dict[str, Any]]:
    """An aggregate kept as array, string and group_array: 240 distinct values of 1,018 emoji, then
    60 of the shortest (50 values and their ids kept)."""
    for n in range(240):
        yield _call(
            "track", "full", f"l{n:03d}", event="long", properties={"value": f"{n:03d}" + "😀" * 1_018}
        )
    for n in range(60):
        yield _call("track", "full", f"s{n:03d}", event="long", properties={"value": str(n)})


def _largest_profile() -> Iterator[dict[str, Any]]:
    """A profile filled: 100 traits of the longest name and a value past its cut, 50 groups of the
    longest ids holding 100 group traits, 100 anonymous ids of 512 bytes linked into it."""
    traits = {f"{n:03d}" + "n" * 253: "v" * 600 for n in range(100)}
    names = sorted(traits)
    for start in range(0, 100, 25):  # 25 traits a call: each call under 32 KB
        yield _call(
            "identify",
            "largest",
            f"t{start}",
            traits={name: traits[name] for name in names[start : start + 25]},
        )
    for n in range(50):
        group_traits = {f"{n:02d}{k}" + "g" * 253: "w" * 600 for k in range(2)}
        yield _call("group", "largest", f"g{n}", groupId=f"{n:03d}" + "G" * 509, traits=group_traits)
    for n in range(100):
        yield _call("identify", "largest", f"a{n}", anonymousId=f"{n:03d}" + "a" * 509)


def _moving_funnel() -> Iterator[dict[str, Any]]:
    """1,300 visits, each a day earlier than the last: every one moves the user's cohort."""
    first = datetime.fromtimestamp(NOW_MS / 1000, UTC)
    for n in range(1_300):
        yield _call(
            "track", "mover", f"v{n}", event="visitor", timestamp=(first - timedelta(days=n)).isoformat()
        )


def _history_import() -> Iterator[dict[str, Any]]:
    """One event a day since 2000-01-01 (the day bitmap, and what a retry must tell of each day)."""
    day = datetime(2000, 1, 1, tzinfo=UTC)
    while day.timestamp() * 1000 < NOW_MS:
        yield _call(
            "track",
            "historian",
            day.strftime("h%Y%m%d"),
            event="long",
            properties={"value": "x"},
            timestamp=day.isoformat(),
        )
        day += timedelta(days=1)


def _largest_call() -> Iterator[dict[str, Any]]:
    """A call of nearly 32 KB."""
    yield _call("track", "big", "big", event="big", properties={"text": "😀" * 7_700})


SEQUENCES = {
    "aggregate": _longest_values,
    "profile": _largest_profile,
    "funnel": _moving_funnel,
    "history": _history_import,
    "stored event": _largest_call,
}


def _kind(item: dict[str, Any]) -> str:
    kind = item.get("kind", {}).get("S")
    if kind == PROFILE_PART_KIND:
        return "profile"  # a large profile's items: its own and its parts
    if kind in ("profile", "funnel", "claim", "index", "rejected"):
        return str(kind)
    if kind is not None:
        return "stored event"
    if "day" in item and "shard" in item:
        return "rollup"
    if "count" in item:
        return "aggregate"
    return "suffixes"  # the plugin's list of key suffixes in use


def ingest_on_fakes(
    control: FakeControl, events: FakeEvents, rejections: FakeRejections, plugin_id: str, now_ms: int
) -> IngestService:
    """The ingest service of a simulation: the fakes' tables, no rate limit, its clock at ``now_ms``."""
    return IngestService(
        directory=PluginDirectory(control, 60),
        sink=events,
        limiter=RateLimiter(FakeBudgets(), 0),
        rejections=RejectionLog(rejections),
        default_plugin_id=plugin_id,
        clock=lambda: now_ms / 1000,
    )


def worst_items() -> dict[str, Any]:
    """The largest item of each kind, in KB, after the worst calls; and the largest of all."""
    control = FakeControl()
    control.publish(PLUGIN, PluginConfig.model_validate(CONFIG), write_key=WRITE_KEY)
    events = FakeEvents()
    rejections = FakeRejections(events.table)
    aggregates = FakeAggregates()
    clock = lambda: NOW_MS / 1000  # noqa: E731 - one instant: nothing expires meanwhile
    ingest = ingest_on_fakes(control, events, rejections, PLUGIN, NOW_MS)
    aggregator = Aggregator(
        aggregates, CurrentConfigs(control), index=events, rejections=rejections, clock=clock
    )
    stream = FakeStream(events.table, shards=1, batch_size=100)
    info = RequestInfo(received_at=NOW_MS, ip="192.0.2.1")
    for name, calls in SEQUENCES.items():
        listed = list(calls())
        for start in range(0, len(listed), 100):
            outcome = ingest.segment("batch", {"batch": listed[start : start + 100]}, AUTH, info)
            if outcome.rejected:  # each call must be one the contract allows, or it measures nothing
                raise AssertionError(f"{name}: {outcome.rejected[0].reply()}")
        stuck = stream.deliver(aggregator.process)
        if stuck:
            raise AssertionError(f"{name}: not aggregated: {stuck}")
    refused = [{"type": "track", "userId": "u", "properties": {"p": "p" * 100}}] * 2_499
    ingest.segment("batch", {"batch": [*refused, {"type": "track", "event": "e", "userId": "u"}]}, AUTH, info)
    stream.deliver(aggregator.process)
    largest: Counter[str] = Counter()
    for table in (events.table, aggregates.table):
        for item in table.all_items():
            kind = _kind(item)
            largest[kind] = max(largest[kind], item_size(item))
    by_kind = {kind: round(size / 1024, 1) for kind, size in largest.most_common()}
    return {"max_item_kb": max(by_kind.values()), "by_kind": by_kind, "largest": next(iter(by_kind))}
