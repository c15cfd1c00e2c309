"""What a public write key may not do to people: link a user into another (an id that has been a
user is never linked as an anonymous id), or build a person deeper or wider than can be read and
deleted whole; and what refused links cost (one rejection record per batch, not one per link)."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.integration.conftest import Invoke, Stream, body, stored_events, stored_rejections
from tracking.models.people import ANONYMOUS_IDS_MAX, LINK_DEPTH_MAX

ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_live_123:").decode()}


@pytest.fixture(autouse=True)
def no_cache(function_env: Any) -> None:
    function_env(CONFIG_CACHE_SECONDS="0", RATE_LIMIT_PER_MINUTE="0")


def send(ingest: Invoke, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = ingest(api_event("POST", path, payload, headers=BASIC))
    assert answer["statusCode"] == 200, answer
    reply: dict[str, Any] = body(answer)
    return reply


def person(query: Invoke, user_id: str) -> dict[str, Any]:
    answer = query(api_event("GET", f"/v1/plugins/demo-plugin/users/{user_id}", headers=ADMIN))
    assert answer["statusCode"] == 200, answer
    found: dict[str, Any] = body(answer)
    return found


def refused_links(aws: Any) -> list[dict[str, Any]]:
    return [r for r in stored_rejections(aws) if "The link was refused" in (r.get("entries") or "")]


def hijack(ingest: Invoke, victim: str) -> None:
    """The attacker's call: the public write key, its own user id, the victim's id as anonymous."""
    send(
        ingest,
        "/v1/identify",
        {"userId": "attacker", "anonymousId": victim, "traits": {"email": "attacker@evil.example"}},
    )


@pytest.mark.parametrize("how", ["segment track", "plugin call", "identify", "has ids linked", "same batch"])
def test_a_user_is_never_linked_into_another(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any, how: str
) -> None:
    # Given a victim who has been a user, one way or another
    victim = "victim-1"
    if how == "segment track":
        send(ingest, "/v1/track", {"event": "rating", "userId": victim, "properties": {"value": 5}})
    elif how == "plugin call":
        call = {"key": "handouts", "value": "a.pdf", "user_id": victim}
        assert ingest(api_event("POST", "/v1/plugins/demo-plugin/track", call))["statusCode"] == 200
    elif how == "identify":
        send(ingest, "/v1/identify", {"userId": victim, "traits": {"email": "victim@example.com"}})
    elif how == "has ids linked":
        send(ingest, "/v1/identify", {"userId": victim, "anonymousId": "victims-phone"})
        send(
            ingest,
            "/v1/track",
            {"event": "rating", "anonymousId": "victims-phone", "properties": {"value": 5}},
        )
    if how != "same batch":
        stream.aggregate()
    # When an attacker identifies with the victim's id as its anonymous id (in the same batch too)
    if how == "same batch":
        calls = [
            {"type": "track", "event": "rating", "userId": victim, "properties": {"value": 5}},
            {"type": "identify", "userId": "attacker", "anonymousId": victim},
        ]
        send(ingest, "/v1/batch", {"batch": calls})
    else:
        hijack(ingest, victim)
    stream.aggregate()
    # Then the victim is still their own person, and the attacker holds nothing of theirs
    found = person(query, victim)
    assert found["user_id"] == victim
    assert "merged_into" not in found
    attacker = person(query, "attacker")
    assert victim not in attacker["anonymous_ids"]
    assert attacker["values"] == {} or "rating" not in attacker["values"]
    # And the refused link is recorded for the plugin
    assert len(refused_links(aws)) == 1


def test_an_anonymous_id_still_links_to_its_user(
    ingest: Invoke, query: Invoke, stream: Stream, demo_config: Any
) -> None:
    # Given an anonymous visitor (Segment's anonymousId alone, a widget token alike)
    send(ingest, "/v1/track", {"event": "rating", "anonymousId": "anon-1", "properties": {"value": 4}})
    stream.aggregate()
    # When they sign in
    send(ingest, "/v1/identify", {"userId": "user-1", "anonymousId": "anon-1"})
    stream.aggregate()
    # Then they are one person
    assert person(query, "anon-1")["merged_into"] == "user-1"
    assert person(query, "user-1")["anonymous_ids"] == ["anon-1"]


def chain(ingest: Invoke, stream: Stream, length: int) -> list[str]:
    """user <- a1 <- a2 <- ... : each id linked while anonymous, then the user side of the next link."""
    ids = ["head"] + [f"link-{n}" for n in range(1, length + 1)]
    for n, anonymous in enumerate(ids[1:], start=1):
        send(ingest, "/v1/track", {"event": "rating", "anonymousId": anonymous, "properties": {"value": n}})
        stream.aggregate()
        send(ingest, "/v1/alias", {"previousId": anonymous, "userId": ids[n - 1]})
        stream.aggregate()
    return ids


def test_a_person_is_at_most_8_links_deep_and_is_read_and_deleted_whole(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given a chain of 9 links asked for, each on the last
    ids = chain(ingest, stream, LINK_DEPTH_MAX + 1)
    # Then 8 hold and the ninth is refused and recorded
    assert len(refused_links(aws)) == 1
    deepest = ids[LINK_DEPTH_MAX]
    assert person(query, deepest)["user_id"] == "head"
    assert person(query, ids[-1])["user_id"] == ids[-1]  # refused: its own person
    # And the head's row counts every event of the 8 linked ids and its own (none)
    head = person(query, "head")
    assert sorted(head["anonymous_ids"]) == sorted(ids[1 : LINK_DEPTH_MAX + 1])
    assert head["values"]["rating"]["value"] == sum(range(1, LINK_DEPTH_MAX + 1)) / LINK_DEPTH_MAX
    # When the head is deleted
    answer = query(api_event("DELETE", "/v1/plugins/demo-plugin/users/head", headers=ADMIN))
    assert answer["statusCode"] == 202
    stream.forget_all()
    # Then nothing of the 8 linked ids is left; the refused ninth keeps its own events
    left = {event["user_id"] for event in stored_events(aws)}
    assert left == {ids[-1]}
    for user_id in ids[: LINK_DEPTH_MAX + 1]:
        gone = query(api_event("GET", f"/v1/plugins/demo-plugin/users/{user_id}", headers=ADMIN))
        assert gone["statusCode"] == 404, user_id


def test_a_person_holds_at_most_100_ids_counted_over_the_whole_person(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given a user with 60 anonymous ids, one of which became the user side of 40 more links
    direct = [{"type": "identify", "userId": "big", "anonymousId": f"d-{n:02d}"} for n in range(60)]
    send(ingest, "/v1/batch", {"batch": direct})
    stream.aggregate()
    nested = [{"type": "alias", "previousId": f"n-{n:02d}", "userId": "d-00"} for n in range(40)]
    send(ingest, "/v1/batch", {"batch": nested})
    stream.aggregate()
    assert refused_links(aws) == []
    # When one more id is linked below the nested one, and one more to the user itself
    send(ingest, "/v1/alias", {"previousId": "n-40", "userId": "d-00"})
    send(ingest, "/v1/identify", {"userId": "big", "anonymousId": "d-60"})
    stream.aggregate()
    # Then both are refused: the person already holds 100 ids besides its user
    refused = refused_links(aws)
    assert sum(record["counts"]["VALIDATION"] for record in refused) == 2
    found = person(query, "big")
    assert len(found["anonymous_ids"]) == ANONYMOUS_IDS_MAX
    assert "n-40" not in found["anonymous_ids"]
    assert "d-60" not in found["anonymous_ids"]


def test_a_batch_of_refused_links_is_one_rejection_record(
    ingest: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given 40 anonymous ids already linked to one user
    send(
        ingest,
        "/v1/batch",
        {"batch": [{"type": "identify", "userId": "first", "anonymousId": f"a-{n}"} for n in range(40)]},
    )
    stream.aggregate()
    # When one request asks to link all 40 to another user
    send(
        ingest,
        "/v1/batch",
        {"batch": [{"type": "alias", "previousId": f"a-{n}", "userId": "second"} for n in range(40)]},
    )
    stream.aggregate()
    # Then the 40 refusals are one record, counting all 40
    (record,) = refused_links(aws)
    assert record["counts"] == {"VALIDATION": 40}


def test_a_chain_built_from_its_tail_up_is_refused_past_its_first_link(
    ingest: Invoke, query: Invoke, aws: Any, stream: Stream, demo_config: Any
) -> None:
    # Given ids each linked, with what is already linked to it, into the next one: t1 -> t2 -> ... -> t10
    ids = [f"t-{n}" for n in range(1, 11)]
    for anonymous, user in itertools.pairwise(ids):
        send(ingest, "/v1/track", {"event": "rating", "anonymousId": anonymous, "properties": {"value": 1}})
        send(ingest, "/v1/alias", {"previousId": anonymous, "userId": user})
        stream.aggregate()
    # Then only the first link holds: every later one would link an id that has ids linked to it
    assert person(query, "t-1")["user_id"] == "t-2"
    assert person(query, "t-2")["user_id"] == "t-2"
    assert sum(record["counts"]["VALIDATION"] for record in refused_links(aws)) == len(ids) - 2
    # And deleting the person deletes all of it
    assert query(api_event("DELETE", "/v1/plugins/demo-plugin/users/t-2", headers=ADMIN))["statusCode"] == 202
    stream.forget_all()
    # (what is left: t-3 onwards, their events and the aliases they refused)
    assert {event["user_id"] for event in stored_events(aws)} == set(ids[2:])
