"""The live view (aggregate/live.py, storage/live.py): a plugin's latest stored events kept per stream
shard, written once per batch (never once per event), merged newest first when read."""

from __future__ import annotations

import json
from typing import Any

from devstack.fakes.live import FakeLive
from devstack.fakes.table import Table
from devstack.local.template import Template
from tests.streams import canonical
from tracking.aggregate.fold import StreamRecord
from tracking.aggregate.live import FULL_BATCH, FULL_BATCH_INTERVAL_MS, LiveView
from tracking.keys import live_pks
from tracking.models.live import RING_MAX, newest
from tracking.storage.dynamo import item_size
from tracking.storage.live import LIVE_ITEM_MAX_BYTES, live_item

NOW = 1_764_016_800_000


def stored(n: int, plugin: str = "p1", **extra: Any) -> StreamRecord:
    event = canonical("emoji", "😍", plugin=plugin, user=f"u{n}", at=NOW + n, event_id=f"g:{n:06d}", **extra)
    return StreamRecord(n, "INSERT", event)


class Clock:
    def __init__(self) -> None:
        self.ms = NOW

    def __call__(self) -> int:
        return self.ms


def shown(live: FakeLive, plugin: str = "p1", limit: int = 200) -> list[str]:
    return [json.loads(line)["event_id"] for line in newest(live.lines(plugin, NOW), limit)]


def test_a_batch_is_one_write_per_plugin_and_shard_not_one_per_event() -> None:
    live, clock = FakeLive(Table()), Clock()
    view = LiveView(live, clock)
    view.after_batch(
        "s1", [stored(n) for n in range(1, 41)] + [stored(n, plugin="p2") for n in range(41, 51)]
    )
    assert live.writes == 2
    assert shown(live)[:3] == ["g:000040", "g:000039", "g:000038"]  # newest first
    assert shown(live, "p2") == [f"g:{n:06d}" for n in range(50, 40, -1)]


def test_a_batch_delivered_again_shows_its_events_once_and_the_ring_keeps_the_newest() -> None:
    live, clock = FakeLive(Table()), Clock()
    view = LiveView(live, clock)
    batch = [stored(n) for n in range(1, 31)]
    view.after_batch("s1", batch)
    LiveView(live, clock).after_batch("s1", batch)  # another container, after a lost answer
    assert shown(live) == [f"g:{n:06d}" for n in range(30, 0, -1)]
    for start in range(31, 400, 30):
        clock.ms += 2_000
        view.after_batch("s1", [stored(n) for n in range(start, start + 30)])
    assert len(shown(live)) == RING_MAX
    assert shown(live)[0] == "g:000420"


def test_shards_rings_are_merged_when_read() -> None:
    live, clock = FakeLive(Table()), Clock()
    view = LiveView(live, clock)
    view.after_batch("s1", [stored(n) for n in (1, 3, 5)])
    view.after_batch("s2", [stored(n) for n in (2, 4, 6)])
    assert sum(len(live.table.query(pk)) for pk in live_pks("p1")) == 2
    assert shown(live, limit=4) == ["g:000006", "g:000005", "g:000004", "g:000003"]


def test_full_batches_write_at_most_once_a_second_and_the_next_write_carries_their_events() -> None:
    live, clock = FakeLive(Table()), Clock()
    view = LiveView(live, clock)
    for batch in range(5):  # a shard behind: full batches back to back
        view.after_batch("s1", [stored(batch * FULL_BATCH + n) for n in range(1, FULL_BATCH + 1)])
        clock.ms += 100
    assert live.writes == 1
    clock.ms += FULL_BATCH_INTERVAL_MS
    view.after_batch("s1", [stored(10_000)])  # caught up: a small batch writes at once
    assert live.writes == 2
    assert shown(live)[:2] == ["g:010000", "g:000500"]


def test_a_failed_write_never_fails_the_batch_and_the_next_write_catches_up() -> None:
    table = Table()
    live, clock = FakeLive(table), Clock()
    view = LiveView(live, clock)
    table.fail_next(1)
    view.after_batch("s1", [stored(1)])  # no exception: the view is best effort
    view.after_batch("s1", [stored(2)])
    assert shown(live) == ["g:000002", "g:000001"]


def test_an_item_stays_within_its_bound_however_large_its_events() -> None:
    huge = [stored(n, properties={"text": f"{n}-" + "x" * 20_000}) for n in range(RING_MAX)]
    live, clock = FakeLive(Table()), Clock()
    LiveView(live, clock).after_batch("s1", huge)
    (item,) = [item for pk in live_pks("p1") for item in live.table.query(pk)]
    assert item_size(item) <= LIVE_ITEM_MAX_BYTES + 200
    event = json.loads(newest(live.lines("p1", NOW), 1)[0])
    assert event["truncated"] is True  # an event past 8 KB keeps its identity only
    lines = [
        json.dumps({"event_id": f"m:{n}", "received_at": n, "text": f"{n:08x}" * 400})
        for n in range(RING_MAX)
    ]
    assert item_size(live_item("p1", "s1", lines, NOW)) <= LIVE_ITEM_MAX_BYTES + 200


def test_an_expired_ring_is_not_read_before_dynamodb_removes_it() -> None:
    live = FakeLive(Table())
    live.keep("p1", "closed-shard", [json.dumps({"event_id": "g:1", "received_at": 1})], NOW)
    assert live.lines("p1", NOW + 86_400_000 + 1_000) == []


def test_full_batch_is_the_aggregate_functions_batch_size() -> None:
    assert Template.load().stream_mapping("AggregateFunction").batch_size == FULL_BATCH


def test_a_deletion_scrubs_the_rings_and_a_later_batch_does_not_bring_them_back() -> None:
    live, clock = FakeLive(Table()), Clock()
    view = LiveView(live, clock)
    view.after_batch("s1", [stored(1), stored(2, plugin="p1")])
    view.after_batch("s2", [stored(3)])
    assert live.forget("p1", ["u1", "u3"], NOW) == 2
    assert shown(live) == ["g:000002"]
    clock.ms += 2_000
    view.after_batch("s1", [stored(4)])  # the ring is read again, not written back from memory
    assert shown(live) == ["g:000004", "g:000002"]


def test_an_event_nested_deeper_than_a_serializer_goes_shows_as_its_identity() -> None:
    nested: dict[str, Any] = {}
    for _ in range(3_000):
        nested = {"a": nested}
    live, clock = FakeLive(Table()), Clock()
    LiveView(live, clock).after_batch("s1", [stored(1, properties=nested), stored(2)])
    lines = [json.loads(line) for line in newest(live.lines("p1", NOW), 5)]
    assert [(e["event_id"], e.get("truncated", False)) for e in lines] == [
        ("g:000002", False),
        ("g:000001", True),
    ]
