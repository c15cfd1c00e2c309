"""The scale simulation (``make bench``) counts what it claims: every write unit lands on one partition
key and one item, every event sent is stored and aggregated, and a seed gives the same figures."""

from __future__ import annotations

from typing import Any

from devstack.bench.scale import simulate
from devstack.bench.worst import worst_items
from devstack.fakes.table import Table
from tracking.storage.dynamo import to_item


def test_every_write_unit_is_counted_once_per_key_and_per_item() -> None:
    table = Table()
    table.put(to_item({"pk": "a", "sk": "1", "text": "x" * 3_000}))  # 3 units
    table.put(to_item({"pk": "a", "sk": "2"}))
    table.put_all([to_item({"pk": "b", "sk": "1"}), to_item({"pk": "b", "sk": "2"})])  # twice the units
    table.delete(("a", "2"))
    assert dict(table.units_by_pk) == {"a": 5, "b": 4}
    assert sum(table.units_by_item.values()) == table.write_units == 9
    assert table.largest_item > 3_000


def test_the_simulation_stores_and_aggregates_every_event_it_sends() -> None:
    run = simulate(600, shards=8, containers=3, seed=7)
    assert (run["stored_events"], run["stuck_shards"]) == (600, 0)
    assert run["max_wcu_per_partition_key"] >= run["max_wcu_per_item"] >= 1
    # The live view writes once per (shard, batch) that stored an event, never once per event:
    # 600 events over 8 shards in batches of up to 100 make at most 8 + 600 / 100 writes.
    assert 1 <= run["live_writes"] <= 8 + 6
    assert run["live_writes_per_event"] <= 14 / 600
    again = simulate(600, shards=8, containers=3, seed=7)
    # The same figures from the same seed, but the live view's write units: its rings hold the
    # events' ids, random in part, compressed (a unit more or less; the live item is the hottest here).
    assert apart_from_the_live_view(again) == apart_from_the_live_view(run)


def apart_from_the_live_view(run: dict[str, Any]) -> dict[str, Any]:
    kinds = {
        kind: units
        for kind, units in run["max_wcu_per_partition_key_by_kind"].items()
        if kind != "the live view"
    }
    varying = (
        "simulation_seconds",
        "live_wcu",
        "max_wcu_per_item",
        "hottest_item",
        "max_wcu_per_partition_key_by_kind",
    )
    return {name: value for name, value in run.items() if name not in varying} | {"kinds": kinds}


def test_the_worst_calls_the_contract_allows_make_no_item_past_64_kb() -> None:
    # Given every item kind driven to its bound (the largest profile among them: 237 KB of traits,
    # groups and linked ids), through the real parser, ingest service and aggregator
    found = worst_items()
    # Then no item of the events or aggregates tables passes 64 KB, the profile's parts included
    assert found["by_kind"]["profile"] > 50  # a profile this full is cut in parts, each nearly full
    assert found["max_item_kb"] <= 64
