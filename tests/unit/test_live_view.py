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
from tracking.keys import live_head_sk, live_pk, live_pks
from tracking.models.live import RING_MAX, live_line, newest
from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.dynamo import item_size
from tracking.storage.live import HEAD_MAX_BYTES, LIVE_ITEM_MAX_BYTES, lines_of, live_item

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
    added: list[int] = []
    add = live.add
    live.add = lambda *args, **kw: (added.append(len(args[2])), add(*args, **kw))[1]  # type: ignore[method-assign]
    view = LiveView(live, clock)
    for batch in range(5):  # a shard behind: full batches back to back
        view.after_batch("s1", [stored(batch * FULL_BATCH + n) for n in range(1, FULL_BATCH + 1)])
        clock.ms += 100
    assert added == [FULL_BATCH]
    clock.ms += FULL_BATCH_INTERVAL_MS
    view.after_batch("s1", [stored(10_000)])  # caught up: a small batch writes at once
    assert added == [FULL_BATCH, RING_MAX]  # the 400 waiting and the new one: the newest 200
    assert shown(live)[:2] == ["g:010000", "g:000500"]


def test_full_batches_handed_to_other_containers_are_written_at_most_once_a_second_too() -> None:
    """Lambda gives a shard's next batch to whichever container is free: the time of the last write is
    read with the item, so a busy shard is written once a second however many containers share it."""
    live, clock = FakeLive(Table()), Clock()
    containers = [LiveView(live, clock) for _ in range(10)]
    for batch, view in enumerate(containers):
        view.after_batch("s1", [stored(batch * FULL_BATCH + n) for n in range(1, FULL_BATCH + 1)])
        clock.ms += 50
    assert live.writes == 1
    clock.ms += FULL_BATCH_INTERVAL_MS
    containers[-1].after_batch("s1", [stored(5_000 + n) for n in range(1, FULL_BATCH + 1)])
    assert live.writes == 2
    assert shown(live)[:2] == ["g:005100", "g:005099"]
    # What a container held back for a shard it no longer gets is dropped after a minute: its next
    # write of that shard carries only its new event (memory stays bounded as shards come and go).
    clock.ms += 61_000
    added: list[int] = []
    add = live.add
    live.add = lambda *args, **kw: (added.append(len(args[2])), add(*args, **kw))[1]  # type: ignore[method-assign]
    containers[3].after_batch("s2", [stored(9_000)])
    containers[3].after_batch("s1", [stored(9_001)])
    assert added == [1, 1]  # not the 100 it held back for s1
    assert shown(live)[:3] == ["g:009001", "g:009000", "g:005100"]


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
    assert item_size(live_item("l", "s1", lines, NOW)) <= LIVE_ITEM_MAX_BYTES + 200


def test_an_expired_ring_is_not_read_before_dynamodb_removes_it() -> None:
    live = FakeLive(Table())
    live.add("p1", "closed-shard", [json.dumps({"event_id": "g:1", "received_at": 1})], NOW)
    assert live.lines("p1", NOW) != []
    assert live.lines("p1", NOW + 86_400_000 + 1_000) == []


def shop_event(n: int) -> StreamRecord:
    """An analytics.js ``Product Viewed`` as stored: about 1 KB as JSON."""
    context = {
        "library": {"name": "analytics.js", "version": "npm:next-1.81.1"},
        "page": {"path": "/shoes", "referrer": "https://www.google.com/", "title": "Cool shoes | Example"},
        "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/131.0.0.0 Safari/537.36",
        "locale": "en-US",
        "ip": "203.0.113.0",
        "browser": "Chrome",
        "os": "Mac OS X",
        "device": "Mac",
    }
    properties = {"product_id": f"sku-{n * 7919 % 1000}", "price": n % 200 + 0.99, "currency": "USD"}
    event = canonical(
        "Product Viewed",
        None,
        user=f"anon-{n * 2654435761 % 10**9:09d}",
        at=NOW + n,
        event_id=f"ajs-next-{n * 40503 % 10**12:012d}",
        dialect="segment",
        context=context,
        properties=properties,
    )
    return StreamRecord(n, "INSERT", event)


def test_a_quiet_plugin_pays_for_its_new_events_not_for_the_whole_ring_each_batch() -> None:
    # One event a batch (a plugin with a call every second or so): a write pays for the small head,
    # and the ring is rewritten only when the head is full (about 1.9 write units an event). Rewriting
    # the 200-event ring every batch cost about 6.7.
    table = Table()
    live, clock = FakeLive(table), Clock()
    view = LiveView(live, clock)
    for n in range(1, 1_001):
        clock.ms += 1_000
        view.after_batch("s1", [shop_event(n)])
    assert table.write_units / 1_000 <= 2.5
    assert len(shown(live)) == RING_MAX
    assert shown(live)[0] == json.loads(live_line(shop_event(1_000).event))["event_id"]
    assert all(
        item_size(item) <= HEAD_MAX_BYTES + 200
        for item in table.all_items()
        if item["sk"]["S"] == live_head_sk("s1")
    )


def test_a_head_moved_into_the_ring_but_not_emptied_shows_its_events_once() -> None:
    def first_move() -> int:
        """How many one-event batches fill the head, so that the next moves it into the ring."""
        table, clock = Table(), Clock()
        view = LiveView(FakeLive(table), clock)
        for n in range(1, RING_MAX):
            view.after_batch("s1", [shop_event(n)])
            if table.peek((live_pk("p1", "s1"), "s1")):
                return n
        raise AssertionError("the head never moved")

    moved_at = first_move()
    table, clock = Table(), Clock()
    live = FakeLive(table)
    view = LiveView(live, clock)
    for n in range(1, moved_at):
        view.after_batch("s1", [shop_event(n)])
    writes = []

    def fail_the_second_write(operation: str) -> None:
        if operation == "write":
            writes.append(operation)
            if len(writes) == 2:
                raise StorageUnavailable("write live view")

    table.faults = fail_the_second_write
    view.after_batch("s1", [shop_event(moved_at)])  # the ring written, the head not emptied
    table.faults = None
    assert sorted(key[1] for key in table.units_by_item) == ["s1", live_head_sk("s1")]
    expected = [json.loads(live_line(shop_event(m).event))["event_id"] for m in range(moved_at, 0, -1)]
    assert shown(live) == expected


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


def test_a_busy_shards_batch_goes_straight_to_the_ring_in_one_write_and_the_head_keeps_its_events() -> None:
    table = Table()
    live, clock = FakeLive(table), Clock()
    view = LiveView(live, clock)
    view.after_batch("s1", [shop_event(1)])  # a quiet moment: the head
    writes = table.writes
    clock.ms += 2_000
    view.after_batch("s1", [shop_event(n) for n in range(2, 62)])  # 60 events: more than a head holds
    assert table.writes == writes + 1
    assert lines_of(table.peek((live_pk("p1", "s1"), live_head_sk("s1")))) == [live_line(shop_event(1).event)]
    expected = [json.loads(live_line(shop_event(n).event))["event_id"] for n in range(61, 0, -1)]
    assert shown(live) == expected
