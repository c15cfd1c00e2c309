"""Writes ``tests/data/layout-1.json``: the aggregates table as the first key layout (one partition
per plugin: ``u␟plugin``, ``f␟plugin``, ``r␟plugin``, before suffixes) left it, and what that version's
query service answered from it. Run with that version's package on the path (a worktree of a35d194):

    PYTHONPATH=<worktree>/layers/shared:<worktree> python tests/data/make_layout_1.py OUT

The key-layout migration's test loads these items, migrates them, and expects the same answers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from devstack.local.builders import canonical
from tests.helpers import identify_call
from tests.unit.test_query_service import ADMIN, CONFIG, NOW, Deployment, published
from tracking.query.requests import RowsQuery, SummaryQuery

PLUGIN = "p1"
DAY = "2025-11-24"


def traffic() -> list[Any]:
    events = []
    for n in range(60):
        user = f"user-{n:03d}"
        group = "control" if n % 2 else "test"
        for depth, step in enumerate(["visitor", "bot_open", "convo_started", "message_sent"][: 1 + n % 4]):
            events.append(
                canonical(
                    step,
                    None,
                    user=user,
                    at=NOW + n * 10 + depth,
                    event_id=f"g:w{n}-{depth}",
                    dialect="widget",
                    ab_group=group,
                )
            )
        events.append(canonical("emoji", "😍" if n % 3 else "👍", user=user, at=NOW + n, event_id=f"g:e{n}"))
        if n % 5 == 0:
            events.append(canonical("rating", n % 10, user=user, at=NOW + n + 1, event_id=f"g:r{n}"))
    # An anonymous visitor who then identifies: linked into the user (a profile, merged aggregates).
    events.append(canonical("emoji", "🎉", user="anon-7", at=NOW + 500, event_id="g:anon-7"))
    events.append(
        identify_call("user-007", "anon-7", at=NOW + 999, event_id="m-identify-7", traits={"plan": "pro"})
    )
    return events


def main(out: str) -> None:
    world = Deployment()
    published(world, PLUGIN)
    world.track(traffic())
    reading = world.reading(PLUGIN)
    rows: dict[str, Any] = {}
    cursor: dict[str, str] = {"limit": "7"}
    while True:
        page = world.service.rows(reading, RowsQuery.read(cursor, reading.published))
        rows.update({row["user_id"]: row["values"] for row in page.rows})
        if page.next_cursor is None:
            break
        cursor = {"limit": "7", "cursor": page.next_cursor}
    summary = world.service.summary(world.service.reader(ADMIN, PLUGIN), SummaryQuery(first=DAY, last=DAY))
    items = sorted(world.aggregates.table.all_items(), key=lambda item: (item["pk"]["S"], item["sk"]["S"]))
    fixture = {"config": CONFIG, "plugin": PLUGIN, "day": DAY, "items": items, "rows": rows}
    fixture["summary"] = summary
    text = json.dumps(fixture, ensure_ascii=False, sort_keys=True, default=str)
    Path(out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
