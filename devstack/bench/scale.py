"""The scale simulation (issue 23, its baseline): one plugin's traffic for one simulated second, half
widget sessions of about 10 events, half Segment batches of 20 calls with identify calls, through the
real dialect parsers, ingest service, key builders and aggregator, on the in-memory fakes (which check
versions and size every item with storage's own builders). ``k`` aggregator containers take the
stream's batches at random (stale caches show up as conflicts). Counted: write units per partition
key value and per item (the hot keys), conflicts, how many shards write one item, what keeping a
client's id unique costs, the largest item, and how many rollup items a summary of the day reads.
docs/PERFORMANCE.md sets these beside the figures of the layout before issue 23."""

from __future__ import annotations

import base64
import math
import random
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from devstack.bench.worst import ingest_on_fakes, worst_items
from devstack.fakes.aggregates import FakeAggregates
from devstack.fakes.control import FakeControl
from devstack.fakes.events import FakeEvents, FakeRejections
from devstack.fakes.live import FakeLive
from devstack.fakes.stream import FakeStream
from devstack.fakes.table import Table
from tracking.aggregate.aggregator import Aggregator
from tracking.aggregate.compaction import IDLE_SECONDS, RollupCompaction
from tracking.aggregate.fold import day_of
from tracking.aggregate.ports import CurrentConfigs
from tracking.keys import (
    CLAIM_KIND,
    ROLLUP_SUFFIXES,
    USER_SUFFIXES,
    aggregates_pk,
    client_id_pk,
    event_pk,
    funnel_pk,
    live_pk,
    live_pks,
    rejections_pk,
    rollups_pk,
    suffixes_key,
)
from tracking.models.config import PluginConfig
from tracking.models.request import RequestInfo
from tracking.query.rows import ITEM_SLACK_PER_USER
from tracking.storage.dynamo import item_size

PLUGIN = "sim-plugin"
WRITE_KEY = "wk_simulation_1"
AUTH = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
CONFIG = {
    "tracking": {"events": [{"key": "rating", "name": {"en": "Rating"}, "aggregations": ["average"]}]},
    "write_keys": [WRITE_KEY],
}
SESSION = ["visitor", "bot_open", "convo_started", "message_sent", "message_sent", "message_sent"]
SEGMENT_EVENTS = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed"]
NOW_MS = 1_764_016_800_000


def _widget_sessions(rng: random.Random, events: int) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    while len(calls) < events:
        token = f"user_{rng.getrandbits(48):012x}"
        steps = SESSION + ["message_sent"] * rng.randrange(0, 8)
        calls += [{"event": step, "token": token, "data": {"chatbot_id": PLUGIN}} for step in steps]
    return calls[:events]


def _segment_batches(rng: random.Random, events: int) -> list[dict[str, Any]]:
    batches: list[dict[str, Any]] = []
    made = 0
    while made < events:
        batch: list[dict[str, Any]] = []
        while len(batch) < 20:
            anonymous = f"anon-{rng.getrandbits(40):010x}"
            user = f"user-{rng.getrandbits(40):010x}"
            batch.append(
                {
                    "type": "identify",
                    "userId": user,
                    "anonymousId": anonymous,
                    "traits": {"plan": "pro"},
                    "messageId": f"m-{rng.getrandbits(64):016x}",
                }
            )
            for _ in range(rng.randrange(2, 6)):
                batch.append(
                    {
                        "type": "track",
                        "event": rng.choice(SEGMENT_EVENTS),
                        "userId": user,
                        "messageId": f"m-{rng.getrandbits(64):016x}",
                        "properties": {"price": 10},
                    }
                )
        batches.append({"batch": batch[:20]})
        made += 20
    return batches


LAYOUTS = {
    aggregates_pk(PLUGIN, 0)[:-3]: "aggregates and profiles",
    rollups_pk(PLUGIN, 0)[:-3]: "rollups",
    funnel_pk(PLUGIN, "")[:-3]: "funnels",
    suffixes_key(PLUGIN)["pk"]: "the plugin's suffixes",
    rejections_pk(PLUGIN, None): "rejection records",
    live_pk(PLUGIN, "")[:-1]: "the live view",
}


def _kind(pk: str) -> str:
    """What a partition key holds, named by its layout (``tracking.keys``) without any id."""
    for start, kind in LAYOUTS.items():
        if pk.startswith(start):
            return kind
    if pk.startswith(client_id_pk(PLUGIN, "")):
        return "a client id's claim"
    if pk.startswith(event_pk(PLUGIN, "")):
        return "a user's events"
    return "other"


def simulate(
    events_per_s: int, shards: int, containers: int, seed: int = 1, *, running: bool = True
) -> dict[str, Any]:
    """One simulated second at ``events_per_s`` for one plugin; write units per partition key value are
    that second's, so they read as WCU/s. ``running``: the plugin has been running (its suffixes item
    lists every suffix, as it does after its first minutes); else its first second, from nothing."""
    rng = random.Random(seed)  # noqa: S311 - synthetic traffic
    control = FakeControl()
    control.publish(PLUGIN, PluginConfig.model_validate(CONFIG), write_key=WRITE_KEY)
    events = FakeEvents()
    rejections = FakeRejections(events.table)
    aggregates = FakeAggregates()
    suffixes = suffixes_key(PLUGIN)
    if running:
        every = {"users": list(range(USER_SUFFIXES)), "rollups": list(range(ROLLUP_SUFFIXES))}
        aggregates.table.add_numbers((suffixes["pk"], suffixes["sk"]), every)
        aggregates.table.units_by_pk.clear()
        aggregates.table.units_by_item.clear()
    ingest = ingest_on_fakes(control, events, rejections, PLUGIN, NOW_MS)
    info = RequestInfo(received_at=NOW_MS, ip="192.0.2.1")
    started = time.perf_counter()
    for call in _widget_sessions(rng, events_per_s // 2):
        ingest.widget(call, info)
    for batch in _segment_batches(rng, events_per_s - events_per_s // 2):
        ingest.segment("batch", batch, AUTH, info)
    stored = len(events.events())
    stream = FakeStream(events.table, shards=shards, batch_size=100)
    # Each container has its own view of the table (its own cache of the suffixes listed).
    views = [FakeAggregates(aggregates.table) for _ in range(containers)]
    clock = lambda: NOW_MS / 1000  # noqa: E731 - the simulated second's time
    config_reads = Counter[str]()
    read_plugin = control.get_plugin

    def counted_read(plugin_id: str) -> Any:
        config_reads[plugin_id] += 1
        return read_plugin(plugin_id)

    control.get_plugin = counted_read  # type: ignore[method-assign]
    live = FakeLive(aggregates.table)
    pool = [
        Aggregator(
            view,
            CurrentConfigs(control),
            index=events,
            rejections=rejections,
            clock=clock,
            workers=1,
            live=live,
        )
        for view in views
    ]
    stuck = stream.deliver(lambda shard, records: rng.choice(pool).process(shard, records))
    elapsed = time.perf_counter() - started
    by_pk = events.table.units_by_pk + aggregates.table.units_by_pk
    by_item = events.table.units_by_item + aggregates.table.units_by_item
    hottest_pk, hottest_units = by_pk.most_common(1)[0]
    hottest_item, item_units = by_item.most_common(1)[0]
    reads = events.table.reads_by_pk + aggregates.table.reads_by_pk
    hottest_read, read_units = reads.most_common(1)[0]
    per_kind: Counter[str] = Counter()
    for pk, units in by_pk.items():
        per_kind[_kind(pk)] = max(per_kind[_kind(pk)], units)
    day = day_of(NOW_MS)
    return {
        "events_per_s": events_per_s,
        "shards": shards,
        "containers": containers,
        "stored_events": stored,
        "stuck_shards": len(stuck),
        "max_wcu_per_partition_key": hottest_units,
        "hottest_partition_key": _kind(hottest_pk),
        "max_wcu_per_partition_key_by_kind": dict(per_kind.most_common()),
        "max_wcu_per_item": item_units,
        "hottest_item": _kind(hottest_item[0]),
        "max_rcu_per_partition_key": round(read_units, 1),
        "hottest_read_partition_key": _kind(hottest_read),
        "config_reads_per_s": config_reads[PLUGIN],
        "config_stamp_reads_per_s": control.stamp_reads,
        "max_item_kb": round(max(events.table.largest_item, aggregates.table.largest_item) / 1024, 1),
        "conflicts": sum(view.conflicts for view in views),
        "max_shards_per_item": _most_shards_guarded(aggregates),
        "client_named_wcu_per_event": _named_write_options(events),
        "suffixes_item_writes": aggregates.table.units_by_pk[suffixes["pk"]],
        "summary_items_read_today": len(aggregates.rollups(PLUGIN, day, day)),
        "summary_items_read": _items_read_once_folded(aggregates, day),
        "rows_page_round_trips": _rows_round_trips(aggregates, pages=5),
        # The live view: one write per (shard, batch) at most, never one per event (issue 27).
        "live_writes": live.writes,
        "live_writes_per_event": round(live.writes / max(1, stored), 4),
        "live_wcu": sum(aggregates.table.units_by_pk[pk] for pk in live_pks(PLUGIN)),
        "simulation_seconds": round(elapsed, 1),
    }


def _most_shards_guarded(aggregates: FakeAggregates) -> int:
    """The most stream shards one aggregate, profile or funnel item keeps a guard entry for (about 80
    bytes each): how many shards wrote it."""
    return max(len(item.get("applied", {}).get("M", {})) for item in aggregates.table.all_items())


def _named_write_options(events: FakeEvents) -> dict[str, float]:
    """Write units per client-named event, as stored (its claim, then the event in its user's
    partition), beside the other ways of keeping the id unique per plugin: the event keyed by its id
    (the previous layout: one write, but on a random shard) and claim and event in one transaction
    (each write billed twice)."""
    items = {Table.key_of(item): item for item in events.table.all_items()}
    pairs = [
        (units(item), units(items[(item["owner"]["S"], item["sk"]["S"])]))
        for item in items.values()
        if item.get("kind", {}).get("S") == CLAIM_KIND
    ]
    if not pairs:
        return {}
    count = len(pairs)
    return {
        "keyed_by_id": round(sum(event for _, event in pairs) / count, 2),
        "claim_then_write": round(sum(claim + event for claim, event in pairs) / count, 2),
        "transaction": round(sum(2 * (claim + event) for claim, event in pairs) / count, 2),
    }


def units(item: Mapping[str, Any]) -> int:
    """Write units of putting the item (1 KB each)."""
    return max(1, math.ceil(item_size(item) / 1024))


def _items_read_once_folded(aggregates: FakeAggregates, day: str) -> int:
    """Rollup items a summary of ``day`` reads once the day is over and its rollups idle (as the
    aggregator's compaction leaves them, all of them folded)."""
    later = NOW_MS + 86_400_000 + IDLE_SECONDS * 1000 + 1
    RollupCompaction(aggregates, lambda: later / 1000, limit=10**9).after_batch([PLUGIN])
    return len(aggregates.rollups(PLUGIN, day, day))


def _rows_round_trips(aggregates: FakeAggregates, pages: int) -> int:
    """The most round trips (waves of parallel queries) one of the first pages of rows took, paged as
    the rows route pages (50 users, the plugin's declared key and the slack per user)."""
    per_user = len(CONFIG["tracking"]["events"]) + ITEM_SLACK_PER_USER  # type: ignore[index]
    after: str | None = None
    aggregates.page_waves.clear()
    for _ in range(pages):
        page = aggregates.page_of_users(PLUGIN, after, 51 * per_user)
        shown = list(page.users)[:50]
        if not shown or (not page.more and len(shown) == len(page.users)):
            break
        after = shown[-1]
    return max(aggregates.page_waves)


def shards_for(events_per_s: int) -> int:
    """The stream's shards at a rate: one per table partition, and a partition takes 1,000 WCU/s (an
    event is one or two), so about one per 500 events/s, 4 at least."""
    return max(4, events_per_s // 500)


def scale(quick: bool) -> dict[str, Any]:
    """The simulation at 1k, 10k and 100k events/s (quick: 1k only), and the summary's reads at 4
    and 4,000 shards."""
    rates = [1_000] if quick else [1_000, 10_000, 100_000]
    runs = {
        f"{rate // 1000}k": simulate(rate, shards=shards_for(rate), containers=max(4, shards_for(rate)))
        for rate in rates
    }
    shard_runs = {shards: simulate(1_000, shards=shards, containers=4) for shards in (4, 4_000)}
    # A plugin's first second, from nothing: what listing its suffixes costs (once in its life).
    first = 1_000 if quick else 10_000
    first_second = simulate(first, shards=shards_for(first), containers=shards_for(first), running=False)
    return {
        "runs": runs,
        "first_second": first_second,
        "worst": worst_items(),
        "summary_items_read_by_shards": {
            str(shards): run["summary_items_read"] for shards, run in shard_runs.items()
        },
        "summary_items_read_today_by_shards": {
            str(shards): run["summary_items_read_today"] for shards, run in shard_runs.items()
        },
    }
