"""Every item stays under its stated maximum (docs/DESIGN.md, "What each item holds at most") whatever
the contract lets clients send, and the pipeline keeps counting past what used to break it: profiles
filled with the largest traits and groups, trait names that would fill the plugin's people item, a
history import of one event a day since 2000, a batch of 2,500 refused calls, thousands of
suppressions."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import Invoke, Stream, body, scan, stored_rejections
from tracking.keys import aggregate_sk, client_id_pk
from tracking.models.people import suppression_hash
from tracking.storage.dynamo import client, item_size
from tracking.storage.plugins import PluginStore

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}
# The stated maxima (docs/DESIGN.md), in bytes as DynamoDB counts them.
PROFILE_ITEM_MAX = 63_500  # a profile item, or one of a large profile's parts: 62 KB
AGGREGATE_MAX = 64_000
PEOPLE_MAX = 32_000  # trait names (13 KB) and the suppression filter (16 KB)
REJECTION_RECORD_MAX = 12_000
FUNNEL_MAX = 92_000
INDEX_MAX = 122_000
DELETION_STEP_MAX = 112_000
CONFIG_MAX = 320_000


@pytest.fixture(autouse=True)
def no_cache(function_env: Any) -> None:
    function_env(CONFIG_CACHE_SECONDS="0", RATE_LIMIT_PER_MINUTE="0")


def batch(ingest: Invoke, calls: list[dict[str, Any]], path: str = "/v1/batch") -> dict[str, Any]:
    answer = ingest(api_event("POST", path, {"batch": calls}, headers=BASIC))
    assert answer["statusCode"] == 200, answer["body"][:500]
    reply: dict[str, Any] = body(answer)
    return reply


def ingest_raw(ingest: Invoke, raw: bytes, headers: dict[str, str]) -> int:
    """A batch posted as the client wrote it (UTF-8, not escaped); how many calls were accepted."""
    answer = ingest(api_event("POST", "/v1/batch", raw=raw, headers=headers))
    assert answer["statusCode"] == 200, answer["body"][:500]
    accepted: int = body(answer)["accepted"]
    return accepted


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
    # Then it is kept as a profile item and parts, each under the stated maximum
    items = profile_items(aws, "full")
    assert [kind for kind, _ in items][:2] == ["profile", "profile_part"]
    assert len(items) >= 4  # over 200 KB in all
    assert max(size for _, size in items) < PROFILE_ITEM_MAX
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
    assert len(found["groups"]) == 50  # GROUPS_MAX
    assert max(size for _, size in profile_items(aws, "full")) < PROFILE_ITEM_MAX
    # And an anonymous id linked into it cannot be linked into another user (the user's ids are in
    # its parts: its profile item still says it has ids linked to it)
    batch(ingest, [{"type": "identify", "userId": "other", "anonymousId": "full"}])
    stream.aggregate()
    assert person(query, "other")["anonymous_ids"] == []
    # And deleting the person removes the profile whole, parts included
    answer = query(api_event("DELETE", "/v1/plugins/demo-plugin/users/full", headers=ADMIN))
    assert answer["statusCode"] == 202, answer["body"]
    stream.forget_all()
    assert profile_items(aws, "full") == []


def profile_items(aws: Any, user_id: str) -> list[tuple[str, int]]:
    """(kind, size) of the items of one id's profile, in key order."""
    found = [
        item
        for item in scan(aws, "AggregatesTable")
        if item.get("kind", {}).get("S") in ("profile", "profile_part") and item["user_id"]["S"] == user_id
    ]
    return [(item["kind"]["S"], item_size(item)) for item in sorted(found, key=lambda i: i["sk"]["S"])]


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


def test_thousands_of_suppressions_keep_the_people_item_one_size_and_each_still_suppresses(
    aws: Any,
) -> None:
    store = PluginStore(client(), "ControlTable")
    # Given a plugin that forgets (and suppresses) 3,000 people, in deletions of ten ids each (the
    # people item used to keep 32 bytes per id: 100 KB by now, 400 KB at 12,000)
    gone = [f"user-{n}" for n in range(3_000)]
    for start in range(0, len(gone), 10):
        store.suppress("p1", [suppression_hash(user_id) for user_id in gone[start : start + 10]])
    # Then the people item is no larger than a plugin's first suppression made it
    (people_item,) = [i for i in scan(aws, "ControlTable") if i["sk"]["S"] == "people"]
    assert item_size(people_item) < PEOPLE_MAX
    # And every one of them is suppressed, and 3,000 others are not (a flagged id is confirmed by a
    # read of its own item: the filter never names someone who is not suppressed)
    _, people = store.get_plugin("p1")
    assert all(people.suppresses(user_id) for user_id in gone)
    assert not any(people.suppresses(f"kept-{n}") for n in range(3_000))
    # And a lifted suppression is lifted although the filter still flags it
    store.lift_suppression("p1", [suppression_hash("user-7")])
    _, people = store.get_plugin("p1")
    assert not people.suppresses("user-7")
    assert people.suppresses("user-8")


def test_a_suppression_list_an_older_version_kept_on_the_people_item_is_still_honoured(aws: Any) -> None:
    # Given a people item as the previous version wrote it (the digests listed on it)
    aws.put_item(
        TableName="ControlTable",
        Item={
            "pk": {"S": "plugin\x1fp1"},
            "sk": {"S": "people"},
            "suppressed": {"SS": [suppression_hash("old-1"), suppression_hash("old-2")]},
        },
    )
    store = PluginStore(client(), "ControlTable")
    # Then those ids are suppressed, a new suppression joins them, and a lift removes an old one
    store.suppress("p1", [suppression_hash("new-1")])
    _, people = store.get_plugin("p1")
    assert [people.suppresses(u) for u in ("old-1", "old-2", "new-1", "other")] == [True, True, True, False]
    store.lift_suppression("p1", [suppression_hash("old-1")])
    _, people = store.get_plugin("p1")
    assert [people.suppresses(u) for u in ("old-1", "old-2", "new-1")] == [False, True, True]


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
    (aggregate,) = [
        i for i in scan(aws, "AggregatesTable") if i["sk"]["S"] == aggregate_sk("historian", "rating")
    ]
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


def test_an_aggregate_holding_the_longest_values_allowed_stays_bounded(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given a key kept as array, string and group_array, fed the longest values of the most bytes
    # (1,024 emoji), each call named by the longest messageId (256 characters)
    config = {
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
        "write_keys": ["wk_long_values"],
    }
    assert query(api_event("PUT", "/v1/plugins/longest/config", config, headers=ADMIN))["statusCode"] == 200
    basic = {"Authorization": "Basic " + base64.b64encode(b"wk_long_values:").decode()}
    for chunk in range(4):
        calls = [
            {
                "type": "track",
                "event": "long",
                "userId": "full",
                "messageId": f"{chunk}-{n:03d}" + "m" * 248,
                "properties": {"value": f"{chunk}-{n:03d}" + "😀" * 1_018},
            }
            for n in range(60)
        ]
        raw = json.dumps({"batch": calls}, ensure_ascii=False).encode()
        assert ingest_raw(ingest, raw, basic) == 60
    stream.aggregate()
    # Then the aggregate is under the stated maximum and reads back
    (aggregate,) = [i for i in scan(aws, "AggregatesTable") if i["sk"]["S"] == aggregate_sk("full", "long")]
    assert item_size(aggregate) < AGGREGATE_MAX
    assert int(aggregate["count"]["N"]) == 240
    # When 60 more calls bring the shortest values, so the array keeps 50 values and their event ids
    # (the longest messageIds a call may have, kept as a digest where longer than 64 characters)
    calls = [
        {
            "type": "track",
            "event": "long",
            "userId": "full",
            "messageId": f"short-{n:03d}" + "m" * 246,
            "properties": {"value": f"{n}"},
        }
        for n in range(60)
    ]
    assert ingest_raw(ingest, json.dumps({"batch": calls}).encode(), basic) == 60
    stream.aggregate()
    # Then it still holds 50 distinct values of 200 bytes each, 50 values, and stays under the maximum
    (aggregate,) = [i for i in scan(aws, "AggregatesTable") if i["sk"]["S"] == aggregate_sk("full", "long")]
    assert item_size(aggregate) < AGGREGATE_MAX
    counts = [pair["L"][0]["S"] for pair in aggregate["counts"]["L"]]
    assert (len(counts), len(aggregate["values"]["L"])) == (50, 50)
    assert all(len(key.encode()) <= 200 for key in counts)
    assert int(aggregate["count"]["N"]) == 300


def test_a_funnel_moved_by_every_event_stays_bounded(
    ingest: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given 1,300 visits, each (its explicit timestamp a day earlier than the last) moving the user's
    # first visit, so each a move of the funnel that the item remembers for retries
    first = datetime(2025, 11, 1, tzinfo=UTC)
    for n in range(1_300):
        call = {"event": "visitor", "userId": "mover", "timestamp": (first - timedelta(days=n)).isoformat()}
        assert ingest(api_event("POST", "/v1/track", call, headers=BASIC))["statusCode"] == 200
    # When the stream delivers them, 100 at a time
    stream.aggregate()
    # Then the funnel item remembers one batch's moves at most, and counted every visit
    (funnel,) = [i for i in scan(aws, "AggregatesTable") if i.get("kind", {}).get("S") == "funnel"]
    assert item_size(funnel) < FUNNEL_MAX
    assert len(funnel["recent"]["L"]) <= 100
    assert int(funnel["entered_at"]["N"]) == int((first - timedelta(days=1_299)).timestamp() * 1000)


def test_index_items_and_deletion_steps_of_the_largest_person_stay_bounded(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given a user with 100 anonymous ids of 512 bytes, and 100 events named by the longest ids a
    # client can give (a messageId of 256 characters), all in one stream batch, stored as an older
    # version stored them (under their ids: the aggregator lists them, then moves the list to index items)
    anonymous = [f"{n:03d}" + "a" * 509 for n in range(100)]
    batch(ingest, [{"type": "identify", "userId": "largest", "anonymousId": a} for a in anonymous])
    stream.aggregate()
    calls = [
        {"type": "track", "event": "rating", "userId": "largest", "messageId": f"{n:03d}" + "m" * 253}
        for n in range(100)
    ]
    batch(ingest, calls)
    for item in scan(aws, "EventsTable"):
        if item["kind"]["S"] == "track":
            aws.delete_item(TableName="EventsTable", Key={"pk": item["pk"], "sk": item["sk"]})
            older = {**item, "pk": {"S": client_id_pk("demo-plugin", item["sk"]["S"])}}
            aws.put_item(TableName="EventsTable", Item=older)  # (over its claim)
    stream.aggregate()
    index = [i for i in scan(aws, "EventsTable") if i["kind"]["S"] == "index"]
    assert index
    assert max(item_size(i) for i in index) < INDEX_MAX
    # When the person is deleted
    answer = query(api_event("DELETE", "/v1/plugins/demo-plugin/users/largest", headers=ADMIN))
    assert answer["statusCode"] == 202
    steps = [i for i in scan(aws, "EventsTable") if i["kind"]["S"] == "deletion"]
    assert max(item_size(step) for step in steps) < DELETION_STEP_MAX
    stream.forget_all()
    # Then it finished, and removed all of it
    deletion = body(answer)["deletion_id"]
    done = body(query(api_event("GET", f"/v1/plugins/demo-plugin/deletions/{deletion}", headers=ADMIN)))
    assert done["status"] == "done"
    assert done["removed"]["events"] >= 200


def test_the_largest_config_allowed_is_stored(query: Invoke, aws: Any) -> None:
    # Given a config of 200 keys of 128 characters, each named in 20 languages, near its 256 KB
    names = {f"{chr(97 + n)}{chr(97 + n)}": "n" * 40 for n in range(20)}
    events = [
        {
            "key": f"{k:03d}" + "k" * 125,
            "name": names,
            "aggregations": ["increment"],
            "delete_existing_events": True,
        }
        for k in range(200)
    ]
    config = {"tracking": {"events": events}, "write_keys": [f"wk_{n:04d}_larger" for n in range(20)]}
    assert len(json.dumps(config)) < 256 * 1024
    answer = query(api_event("PUT", "/v1/plugins/largest/config", config, headers=ADMIN))
    assert answer["statusCode"] == 200, answer["body"][:300]
    (item,) = [i for i in scan(aws, "ControlTable") if i["sk"]["S"] == "config"]
    assert item_size(item) < CONFIG_MAX
