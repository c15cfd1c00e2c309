"""The merge property, shared by the moto and DynamoDB Local tests: events of anonymous ids and users,
identify and alias links among them, interleaved over several shards and replayed with injected
failures, must read (through the query function) exactly as one clean pass in which every event
already carried the user its id resolves to."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.conftest import SAMPLE_ADMIN_KEY
from tests.helpers import api_event
from tests.replay import BASE_TIME, CONFIG, VALUES, Planned, Scenario, with_faults
from tests.streams import canonical
from tracking.models.canonical import CanonicalEvent

Invoke = Callable[[dict[str, Any]], dict[str, Any]]
USERS = ("u0", "u1", "u2")
ANONYMOUS = ("a0", "a1", "a2", "a3")
ADMIN = {"x-api-key": SAMPLE_ADMIN_KEY}


@dataclass
class MergeScenario:
    scenario: Scenario  # the events (identify and alias calls among them), over shards, with faults
    links: dict[str, str]  # each linked id -> the id it was linked to (the links that must hold)

    def root(self, user_id: str) -> str:
        while user_id in self.links:
            user_id = self.links[user_id]
        return user_id

    def resolved(self) -> Scenario:
        """The clean pass's input: every event under the user its id resolves to, no faults."""
        shards = {
            shard: [
                replace(planned, event=self._resolve(planned.event)) if planned.event else planned
                for planned in records
            ]
            for shard, records in self.scenario.shards.items()
        }
        return replace(
            self.scenario,
            shards=shards,
            faulty_invocations=0,
            put_failure_rate=0.0,
            get_failure_rate=0.0,
            lost_response_rate=0.0,
        )

    def _resolve(self, event: CanonicalEvent) -> CanonicalEvent:
        if event.kind in ("identify", "alias"):
            return event  # its user is the link's target already
        return event.model_copy(update={"user_id": self.root(event.user_id)})

    def people(self) -> set[str]:
        return {self.root(i) for i in (*USERS, *ANONYMOUS)}


def _link_event(kind: str, anonymous: str, user: str, at: int, index: int, traits: Any) -> CanonicalEvent:
    extra = {"anonymous_id": anonymous} if kind == "identify" else {"previous_id": anonymous}
    return canonical(
        kind,
        user=user,
        plugin="p1",
        at=at,
        event_id=f"m:link-{index:04d}",
        kind=kind,
        dialect="segment",
        traits=traits if kind == "identify" else {},
        **extra,
    )


@st.composite
def merge_scenarios(draw: st.DrawFn, max_events: int = 40) -> MergeScenario:
    links: dict[str, str] = {}
    for anonymous in ANONYMOUS:
        target = draw(st.sampled_from([None, *USERS]))
        if target is not None:
            links[anonymous] = target
    shard_names = draw(
        st.lists(st.sampled_from(["shard-A", "shard-B", "shard-C"]), min_size=1, max_size=3, unique=True)
    )
    planned: list[tuple[str, CanonicalEvent]] = []
    count = draw(st.integers(1, max_events))
    for index in range(count):
        actor = draw(st.sampled_from((*USERS, *ANONYMOUS)))
        # An anonymous id's calls name it as the anonymous id (Segment's anonymousId alone); a user's
        # name their user (a plugin call's user_id).
        anonymously = {"dialect": "segment", "anonymous_id": actor} if actor in ANONYMOUS else {}
        at = BASE_TIME + draw(st.integers(0, 3)) * 86_400_000 + draw(st.integers(0, 5_000))
        if draw(st.integers(0, 5)) == 0:  # an identify of the actor alone, with traits
            traits = {"plan": draw(st.sampled_from(["free", "pro", "team"]))}
            event = canonical(
                "identify",
                user=actor,
                plugin="p1",
                at=at,
                event_id=f"g:{index:06d}",
                kind="identify",
                traits=traits,
                **{"dialect": "segment", **anonymously},
            )
        else:
            key = draw(st.sampled_from(sorted(VALUES)))
            # Some events carry the client's own id (a messageId): they are listed for deletion.
            event_id = f"m:{index:06d}" if draw(st.booleans()) else f"g:{index:06d}"
            event = canonical(
                key,
                draw(st.sampled_from(VALUES[key])),
                user=actor,
                plugin="p1",
                at=at,
                event_id=event_id,
                **anonymously,
            )
        planned.append((draw(st.sampled_from(shard_names)), event))
    for index, (anonymous, user) in enumerate(sorted(links.items())):
        # Each link is sent once or twice (a retry, or identify then alias), anywhere in the streams.
        for repeat in range(draw(st.integers(1, 2))):
            kind = draw(st.sampled_from(["identify", "alias"]))
            at = BASE_TIME + draw(st.integers(0, 3)) * 86_400_000 + draw(st.integers(0, 5_000))
            traits = {"plan": draw(st.sampled_from(["free", "pro"]))}
            event = _link_event(kind, anonymous, user, at, index * 10 + repeat, traits)
            position = draw(st.integers(0, len(planned)))
            planned.insert(position, (draw(st.sampled_from(shard_names)), event))
    shards: dict[str, list[Planned]] = {name: [] for name in shard_names}
    next_seq = {name: draw(st.integers(1, 10**20)) for name in shard_names}
    for shard, event in planned:
        shards[shard].append(Planned(shard, next_seq[shard], event))
        next_seq[shard] += draw(st.integers(1, 10**6))
    return MergeScenario(with_faults(draw, shards), links)


def publish(query: Invoke) -> None:
    put = api_event("PUT", "/v1/plugins/p1/config", CONFIG, headers=ADMIN)
    assert query(put)["statusCode"] == 200


def person(query: Invoke, user_id: str) -> dict[str, Any] | None:
    answer = query(api_event("GET", f"/v1/plugins/p1/users/{quote(user_id)}", headers=ADMIN))
    if answer["statusCode"] == 404:
        return None
    assert answer["statusCode"] == 200, answer
    reply: dict[str, Any] = json.loads(answer["body"])
    return reply


def listed_users(query: Invoke) -> list[str]:
    users, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        answer = query(api_event("GET", "/v1/plugins/p1/rows", headers=ADMIN, query=params))
        assert answer["statusCode"] == 200, answer
        page = json.loads(answer["body"])
        users += [row["user_id"] for row in page["rows"]]
        cursor = page["next_cursor"]
        if not cursor:
            return users


def read_people(query: Invoke, merge: MergeScenario) -> dict[str, Any]:
    """What the dashboard shows: each person's row and profile (by their user id), which user each
    id answers as, and the users the rows list."""
    shown = {}
    for user_id in sorted(merge.people()):
        found = person(query, user_id)
        if found is not None:
            found.pop("anonymous_ids")  # which ids, not what they counted: compared below
            shown[user_id] = found
    answers_as = {}
    for user_id in (*USERS, *ANONYMOUS):
        found = person(query, user_id)
        answers_as[user_id] = found["user_id"] if found else None
    return {"people": shown, "answers_as": answers_as, "rows": sorted(listed_users(query))}


def assert_merged_like_clean(merge: MergeScenario, merged: dict[str, Any], clean: dict[str, Any]) -> None:
    for user_id in sorted(set(merged["people"]) | set(clean["people"])):
        assert merged["people"].get(user_id) == clean["people"].get(user_id), (user_id, merge.links)
    assert merged["rows"] == clean["rows"]
    for user_id, shown_as in merged["answers_as"].items():
        root = merge.root(user_id)
        if shown_as is not None:
            assert shown_as == root, (user_id, merged["answers_as"])
        # An id linked to a user with anything tracked answers as that user.
        if user_id in merge.links and clean["answers_as"].get(root) is not None:
            assert shown_as == root
