"""Identity and people on the local stack, as the issue's "done when" walks them: an anonymous visitor
identifies, their row merges into the user's; the user is deleted and suppressed; the suppression is
lifted. Everything over HTTP, the stream poller and the forget function doing their part."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.e2e.conftest import Stack, eventually

pytestmark = pytest.mark.e2e

PLUGIN = "people-plugin"
CONFIG = {
    "tracking": {
        "events": [
            {
                "key": "rating",
                "name": {"en": "Rating"},
                "aggregations": ["average", "array"],
                "value_type": "number",
            }
        ]
    },
    "write_keys": ["wk_people_0001"],
}
BASIC = {"Authorization": "Basic " + base64.b64encode(b"wk_people_0001:").decode()}
ROUTES = (
    "/v1/plugins/{p}/rows",
    "/v1/plugins/{p}/export.csv",
    "/v1/plugins/{p}/users/U",
    "/v1/plugins/{p}/users/A",
    "/v1/plugins/{p}/users/U/events",
    "/v1/plugins/{p}/users/A/events",
)


def send(stack: Stack, path: str, call: dict[str, Any]) -> None:
    reply = stack.request("POST", path, call, headers=BASIC)
    assert reply.status == 200, reply.raw


def user(stack: Stack, user_id: str) -> dict[str, Any] | None:
    reply = stack.admin("GET", f"/v1/plugins/{PLUGIN}/users/{user_id}")
    return reply.json if reply.status == 200 else None


def mentions(stack: Stack, *ids: str) -> list[str]:
    """The routes whose answer still names one of the ids."""
    found = []
    for route in ROUTES:
        reply = stack.admin("GET", route.format(p=PLUGIN))
        text = reply.raw.decode("utf-8")
        if reply.status == 200 and any(json.dumps(i) in text or f"\n{i}," in text for i in ids):
            found.append(route)
    return found


def test_identify_merges_then_delete_forgets_and_suppresses_then_lifting_counts_again(stack: Stack) -> None:
    assert stack.admin("PUT", f"/v1/plugins/{PLUGIN}/config", CONFIG).status == 200
    send(stack, "/v1/track", {"event": "rating", "anonymousId": "A", "properties": {"value": 2}})
    send(stack, "/v1/track", {"event": "rating", "userId": "U", "properties": {"value": 4}})
    assert eventually(lambda: user(stack, "A") and user(stack, "U"))
    send(stack, "/v1/identify", {"userId": "U", "anonymousId": "A", "traits": {"name": "Ana"}})

    def merged() -> dict[str, Any] | None:
        found = user(stack, "A")
        return found if found and found.get("merged_into") == "U" else None

    anonymous = eventually(merged)
    assert anonymous, user(stack, "A")
    own = user(stack, "U")
    assert own is not None
    assert own["values"]["rating"]["value"] == 3  # A's 2 and U's 4
    assert own["anonymous_ids"] == ["A"]
    assert own["traits"] == {"name": "Ana"}
    rows = stack.admin("GET", f"/v1/plugins/{PLUGIN}/rows").json["rows"]
    assert [row["user_id"] for row in rows] == ["U"]

    started = time.monotonic()
    deletion = stack.admin("DELETE", f"/v1/plugins/{PLUGIN}/users/U")
    assert deletion.status == 202
    status_path = f"/v1/plugins/{PLUGIN}/deletions/{deletion.json['deletion_id']}"
    done = eventually(lambda: stack.admin("GET", status_path).json.get("status") == "done", timeout_s=60)
    assert done, stack.admin("GET", status_path).json
    assert time.monotonic() - started < 60
    assert mentions(stack, "U", "A") == []
    before = len(stack.stored())
    send(stack, "/v1/track", {"event": "rating", "userId": "U", "properties": {"value": 5}})
    send(stack, "/v1/track", {"event": "rating", "anonymousId": "A", "properties": {"value": 5}})
    assert len(stack.stored()) == before  # suppressed: answered, nothing stored

    assert stack.admin("DELETE", f"/v1/plugins/{PLUGIN}/suppressions/U").status == 200
    time.sleep(6)  # every container's cached config (5 s) has seen the lift
    send(stack, "/v1/track", {"event": "rating", "userId": "U", "properties": {"value": 5}})
    counted = eventually(lambda: (user(stack, "U") or {}).get("values", {}).get("rating"))
    assert counted
    assert counted["value"] == 5
