"""Every answer fits Lambda's 6 MB as Lambda sends it (the proxy result's JSON, every non-ASCII
character escaped), and what could be larger pages: a summary of a source with 6,600 event names, a
person with 6,600 keys, a page of their events of 30 KB each, rows and CSV parts whose cells hold the
longest values allowed, the list of plugins. A series reads only the keys it was asked for."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event, key_order
from tests.integration.conftest import Invoke, body
from tracking.models.aggregates import AggregateState, RollupState
from tracking.storage.aggregate_items import aggregate_to_item
from tracking.storage.aggregates import AggregateStore
from tracking.storage.control import ControlStore
from tracking.storage.dynamo import client
from tracking.storage.rollup_items import rollup_to_item

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}
LAMBDA_MAX = 6 * 1024 * 1024
NAMES = 6_600


def as_sent(answer: dict[str, Any]) -> int:
    """Bytes of the answer as Lambda sends it."""
    return len(json.dumps(answer))


def read(query: Invoke, path: str, **params: str) -> dict[str, Any]:
    answer = query(api_event("GET", path, headers=ADMIN, query=params or None))
    assert answer["statusCode"] == 200, answer["body"][:300]
    assert as_sent(answer) < LAMBDA_MAX, path
    return answer


def put_all(aws: Any, items: Iterator[dict[str, Any]]) -> None:
    """Items as the stream function leaves them, written in bulk (their suffixes listed, as the
    function lists them)."""
    written: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    for item in items:
        written.append(item)
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25:
            aws.batch_write_item(RequestItems={"AggregatesTable": batch})
            batch = []
    if batch:
        aws.batch_write_item(RequestItems={"AggregatesTable": batch})
    AggregateStore(aws, "AggregatesTable").record_suffixes_of(written)


def name(n: int) -> str:
    """An event name of 256 bytes, 64 emoji: 768 bytes once Lambda escapes it."""
    return f"{n:04d}" + "😀" * 63


def test_a_summary_of_6600_event_names_fits_and_keeps_the_most_frequent(
    query: Invoke, aws: Any, demo_config: Any
) -> None:
    put_all(
        aws,
        (
            rollup_to_item(
                RollupState("demo-plugin", "2025-11-24", name(n), "none", "shard-1", 1, 0, 1, n + 1)
            )
            for n in range(NAMES)
        ),
    )
    summary = body(
        read(
            query,
            "/api/analytics/summary",
            chatbot_id="demo-plugin",
            **{"from": "2025-11-24", "to": "2025-11-24"},
        )
    )
    assert len(summary["counts"]) == 500
    assert min(summary["counts"].values()) == NAMES - 499  # the most frequent
    rest = NAMES - 500
    assert summary["other_counts"] == {"keys": rest, "events": sum(range(1, rest + 1))}


def test_a_person_with_6600_keys_pages_their_values(query: Invoke, aws: Any, demo_config: Any) -> None:
    put_all(
        aws,
        (
            aggregate_to_item(AggregateState("demo-plugin", "many", name(n), version=1, count=n + 1))
            for n in range(NAMES)
        ),
    )
    seen: dict[str, Any] = {}
    cursor: str | None = None
    pages = 0
    while True:
        found = body(
            read(query, "/v1/plugins/demo-plugin/users/many", **({"cursor": cursor} if cursor else {}))
        )
        assert not set(found["values"]) & set(seen)
        seen.update(found["values"])
        pages += 1
        cursor = found.get("next_cursor")
        if not cursor:
            break
    assert pages >= 2
    assert len(seen) == NAMES
    assert seen[name(42)]["value"] == 43


def test_a_page_of_a_persons_events_of_30_kb_each_fits(
    ingest: Invoke, query: Invoke, demo_config: Any
) -> None:
    for n in range(120):
        call = {
            "event": "rating",
            "userId": "heavy",
            "properties": {"value": 1, "note": f"{n:03d}" + "😀" * 7_400},
        }
        raw = json.dumps(call, ensure_ascii=False).encode()  # 30 KB as a client sends it
        assert ingest(api_event("POST", "/v1/track", raw=raw, headers=BASIC))["statusCode"] == 200
    lines: list[str] = []
    cursor: str | None = None
    while True:
        answer = read(
            query, "/v1/plugins/demo-plugin/users/heavy/events", **({"cursor": cursor} if cursor else {})
        )
        lines += answer["body"].splitlines()
        cursor = (answer.get("multiValueHeaders") or {}).get("X-Next-Cursor", [None])[0]
        if not cursor:
            break
    notes = sorted(json.loads(line)["properties"]["note"][:3] for line in lines)
    assert notes == [f"{n:03d}" for n in range(120)]


@pytest.fixture
def crowded(query: Invoke, aws: Any) -> None:
    """200 group_array keys, a user whose every key counts 50 values of 200 emoji: 48 MB as sent, were
    the row shown whole; then a few ordinary users."""
    config = {
        "tracking": {
            "events": [
                {
                    "key": f"k{n:03d}",
                    "name": {"en": f"K{n}"},
                    "aggregations": ["group_array"],
                    "value_type": "string",
                }
                for n in range(200)
            ]
        }
    }
    assert query(api_event("PUT", "/v1/plugins/crowded/config", config, headers=ADMIN))["statusCode"] == 200
    counts = {f"{v:02d}" + "😀" * 198: 1 for v in range(50)}
    states = [
        AggregateState("crowded", "attacker", f"k{n:03d}", version=1, count=50, counts=counts)
        for n in range(200)
    ]
    states += [
        AggregateState("crowded", f"user-{u}", "k000", version=1, count=1, counts={"ok": 1}) for u in range(5)
    ]
    put_all(aws, (aggregate_to_item(state) for state in states))


def test_rows_and_csv_parts_fit_whatever_the_cells_hold(query: Invoke, crowded: None) -> None:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = body(
            read(query, "/v1/plugins/crowded/rows", limit="200", **({"cursor": cursor} if cursor else {}))
        )
        rows += page["rows"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [row["user_id"] for row in rows] == key_order(["attacker"] + [f"user-{u}" for u in range(5)])
    attacker = next(row for row in rows if row["user_id"] == "attacker")["values"]
    assert attacker["k000"]["value"]["total"] == 50  # shown whole, up to the row's bound
    assert any(cell.get("truncated") for cell in attacker.values())  # then cut, saying so
    exported: list[list[str]] = []
    cursor = None
    while True:
        answer = read(query, "/v1/plugins/crowded/export.csv", **({"cursor": cursor} if cursor else {}))
        exported += list(csv.reader(io.StringIO(answer["body"].removeprefix("\ufeff"))))[
            (0 if cursor else 1) :
        ]
        cursor = (answer.get("multiValueHeaders") or {}).get("X-Next-Cursor", [None])[0]
        if not cursor:
            break
    assert [line[0] for line in exported] == key_order(["attacker"] + [f"user-{u}" for u in range(5)])


def test_plugins_are_listed_a_page_at_a_time_and_unconfigured_ones_are_bounded(
    query: Invoke, aws: Any
) -> None:
    store = ControlStore(client(), "ControlTable", unconfigured_max=250)
    registered = [store.register_plugin(f"bot-{n:04d}", 1) for n in range(300)]
    assert registered.count(True) == 250  # past the bound, a chatbot is listed once it is configured
    assert store.register_plugin("bot-0001", 2)  # listed already
    listed: list[str] = []
    cursor: str | None = None
    while True:
        page = body(read(query, "/v1/plugins", limit="100", **({"cursor": cursor} if cursor else {})))
        assert len(page["plugins"]) <= 100
        listed += [entry["plugin_id"] for entry in page["plugins"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert listed == [f"bot-{n:04d}" for n in range(250)]


def test_a_series_reads_only_the_keys_it_asks_for(query: Invoke, aws: Any, demo_config: Any) -> None:
    put_all(
        aws,
        (
            rollup_to_item(
                RollupState("demo-plugin", "2025-11-24", f"key-{n:04d}", "none", "shard-1", 1, 0, 1, 1)
            )
            for n in range(NAMES)
        ),
    )
    returned: list[int] = []

    def count(parsed: dict[str, Any], **_: Any) -> None:
        returned.append(len(parsed.get("Items", [])))

    client().meta.events.register("after-call.dynamodb.Query", count)
    try:
        series = body(
            read(
                query,
                "/v1/plugins/demo-plugin/series",
                keys="key-0042",
                **{"from": "2025-11-24", "to": "2025-11-24"},
            )
        )
    finally:
        client().meta.events.unregister("after-call.dynamodb.Query", count)
    assert series["series"]["key-0042"] == [{"day": "2025-11-24", "events": 1, "users": 0}]
    assert sum(returned) <= 5  # the config's items and the asked key's rollup, not 6,600 rollups
