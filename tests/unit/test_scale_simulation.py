"""The scale simulation (``make bench``) counts what it claims: every write unit lands on one partition
key and one item, every event sent is stored and aggregated, and a seed gives the same figures."""

from __future__ import annotations

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
    assert simulate(600, shards=8, containers=3, seed=7) | {"simulation_seconds": 0} == run | {
        "simulation_seconds": 0
    }


def test_the_worst_calls_the_contract_allows_make_no_item_past_64_kb() -> None:
    # Given every item kind driven to its bound (the largest profile among them: 237 KB of traits,
    # groups and linked ids), through the real parser, ingest service and aggregator
    found = worst_items()
    # Then no item of the events or aggregates tables passes 64 KB, the profile's parts included
    assert found["by_kind"]["profile"] > 50  # a profile this full is cut in parts, each nearly full
    assert found["max_item_kb"] <= 64
