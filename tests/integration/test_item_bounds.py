"""Every item stays under its stated maximum (docs/DESIGN.md, "What each item holds at most") whatever
the contract lets clients send, and the pipeline keeps counting past what used to break it: profiles
filled with the largest traits and groups, trait names that would fill the plugin's people item, a
history import of one event a day since 2000, a batch of 2,500 refused calls."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import Invoke, Stream, body, scan, stored_rejections
from tracking.storage.dynamo import item_size

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}
# The stated maxima (docs/DESIGN.md), in bytes as DynamoDB counts them.
PROFILE_MAX = 290_000
AGGREGATE_MAX = 160_000
PEOPLE_MAX = 20_000
REJECTION_RECORD_MAX = 12_000


@pytest.fixture(autouse=True)
def no_cache(function_env: Any) -> None:
    function_env(CONFIG_CACHE_SECONDS="0", RATE_LIMIT_PER_MINUTE="0")


def batch(ingest: Invoke, calls: list[dict[str, Any]], path: str = "/v1/batch") -> dict[str, Any]:
    answer = ingest(api_event("POST", path, {"batch": calls}, headers=BASIC))
    assert answer["statusCode"] == 200, answer["body"][:500]
    reply: dict[str, Any] = body(answer)
    return reply


def items_of(aws: Any, table: str, sk_part: str) -> list[dict[str, Any]]:
    return [item for item in scan(aws, table) if sk_part in item["sk"]["S"]]


def person(query: Invoke, user_id: str) -> dict[str, Any]:
    answer = query(api_event("GET", f"/v1/plugins/demo-plugin/users/{user_id}", headers=ADMIN))
    assert answer["statusCode"] == 200, answer["body"][:500]
    found: dict[str, Any] = body(answer)
    return found


def big(n: int, size: int = 30_000) -> str:
    return f"{n:04d}" + "😀" * (size // 4)


def test_a_profile_filled_with_the_largest_traits_groups_and_ids_stays_bounded_and_counting(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given a user whose identifies carry 150 traits (names of 256 bytes, values of 30 KB), 60 groups
    # each with 10 traits of 30 KB, and 100 anonymous ids linked to it
    name = "n" * 252
    for n in range(150):
        batch(ingest, [{"type": "identify", "userId": "full", "traits": {f"{name}{n:04d}": big(n)}}])
    for n in range(60):
        traits = {f"g{k:02d}": big(k, 2_500) for k in range(10)}
        batch(
            ingest, [{"type": "group", "userId": "full", "groupId": "G" * 500 + f"{n:03d}", "traits": traits}]
        )
    batch(
        ingest,
        [{"type": "identify", "userId": "full", "anonymousId": f"{'a' * 500}{n:03d}"} for n in range(100)],
    )
    stream.aggregate()
    # Then its profile item stays under the stated maximum
    (profile,) = [
        i
        for i in scan(aws, "AggregatesTable")
        if i.get("kind", {}).get("S") == "profile" and i["user_id"]["S"] == "full"
    ]
    assert item_size(profile) < PROFILE_MAX
    # And the pipeline keeps going: a later identify updates a kept trait, an anonymous id's event
    # counts for the user
    batch(ingest, [{"type": "identify", "userId": "full", "traits": {f"{name}0000": "updated"}}])
    batch(
        ingest,
        [{"type": "track", "event": "rating", "anonymousId": f"{'a' * 500}007", "properties": {"value": 4}}],
    )
    stream.aggregate()
    found = person(query, "full")
    assert found["traits"][f"{name}0000"] == "updated"
    assert found["values"]["rating"]["value"] == 4
    assert len(found["traits"]) == 100  # TRAITS_MAX names kept
    assert len(found["anonymous_ids"]) == 100


def test_trait_names_cannot_fill_the_plugins_people_item(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given identifies with 100 trait names of 10 KB each (not kept), and 100 of 256 bytes
    for n in range(100):
        batch(ingest, [{"type": "identify", "userId": f"u{n}", "traits": {f"{n:03d}" + "x" * 10_000: 1}}])
        batch(ingest, [{"type": "identify", "userId": f"u{n}", "traits": {f"{n:03d}" + "y" * 253: 1}}])
    stream.aggregate()
    # Then the people item (read with the config by every container) stays small
    (people,) = [i for i in scan(aws, "ControlTable") if i["sk"]["S"] == "people"]
    assert item_size(people) < PEOPLE_MAX
    # And deleting someone still works, to the end
    answer = query(api_event("DELETE", "/v1/plugins/demo-plugin/users/u1", headers=ADMIN))
    assert answer["statusCode"] == 202
    stream.forget_all()
    deletion = body(answer)["deletion_id"]
    done = query(api_event("GET", f"/v1/plugins/demo-plugin/deletions/{deletion}", headers=ADMIN))
    assert body(done)["status"] == "done"


def test_a_history_import_of_one_event_a_day_since_2000_counts_every_event(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given one event a day from 2000-01-01, imported in batches as a migration sends them
    first = datetime(2000, 1, 1, 12, tzinfo=UTC)
    days = (datetime.now(UTC) - first).days
    assert days > 9_000
    calls = [
        {
            "type": "track",
            "event": "rating",
            "userId": "historian",
            "messageId": f"h-{n}",
            "timestamp": (first + timedelta(days=n)).isoformat(),
            "properties": {"value": n % 5},
        }
        for n in range(days)
    ]
    for start in range(0, len(calls), 2_500):
        assert batch(ingest, calls[start : start + 2_500], "/v1/import")["accepted"] == len(
            calls[start : start + 2_500]
        )
    # When the stream delivers them, 100 at a time
    stream.aggregate()
    # Then every one counted, and the aggregate stays under the stated maximum
    found = person(query, "historian")
    assert found["values"]["rating"]["value"] == pytest.approx(
        sum(n % 5 for n in range(days)) / days, abs=1e-5
    )
    (aggregate,) = [i for i in scan(aws, "AggregatesTable") if i["sk"]["S"] == "historian\x1frating"]
    assert int(aggregate["count"]["N"]) == days
    assert item_size(aggregate) < AGGREGATE_MAX
    series = query(
        api_event(
            "GET",
            "/v1/plugins/demo-plugin/series",
            headers=ADMIN,
            query={"keys": "rating", "from": "2000-01-01", "to": "2001-01-31"},
        )
    )
    assert sum(day["users"] for day in body(series)["series"]["rating"]) == 397  # active each day


def test_a_batch_of_2500_refused_calls_is_one_small_record_counting_all(
    ingest: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given a batch of 2,500 calls (500 KB), all refused but one
    calls = [{"type": "track", "userId": "u", "properties": {"p": "p" * 100}}] * 2_500  # no event
    reply = batch(ingest, [*calls[:2_499], {"type": "track", "event": "rating", "userId": "u"}])
    assert reply["accepted"] == 1
    # Then the request left one record, counting every refusal, under the stated maximum
    (record,) = stored_rejections(aws)
    assert record["counts"] == {"VALIDATION": 2_499}
    (item,) = [i for i in scan(aws, "EventsTable") if i["kind"]["S"] == "rejected"]
    assert item_size(item) < REJECTION_RECORD_MAX
    assert len(json.loads(record["entries"])) >= 1
