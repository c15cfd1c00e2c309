"""A profile's items. Nearly every profile is one item, beside its id's aggregates. One that outgrows
``PROFILE_INLINE_MAX`` (up to 100 linked ids, 50 groups and 200 traits of the longest a call may send
come to about 320 KB) keeps its linked ids, groups and traits as one JSON text cut into parts of at
most ``PART_BYTES``, each an item of its own right after the profile's (``keys.profile_part_sk``): no
item of a profile passes 62 KB, whatever it holds (docs/DESIGN.md, "What each item holds at most").

The profile's own item lists each part's version and digest. A write rewrites only the parts whose
bytes changed (the text puts linked ids first and traits last: what changes most moves least), in one
transaction with the profile's conditional write. A reader that finds a part of another version than
the profile lists (a write between two reads) reads the profile and its parts again, in one
transaction (``profile_from_items`` says so by answering None).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tracking.json_text import dumps_compact
from tracking.keys import PROFILE_KIND, PROFILE_PART_KIND, aggregate_pk, profile_part_sk, profile_sk
from tracking.models.people import ProfileState, TraitValue
from tracking.storage.dynamo import AttributeValue, from_item, item_size, to_item

Item = dict[str, AttributeValue]

PROFILE_INLINE_MAX = 60 * 1024  # a profile item up to this size keeps everything itself
PART_BYTES = 60_000  # of the JSON text, per part: with its keys, a part item stays under 62 KB
BODY = ("anonymous_ids", "groups", "traits")  # what parts hold, in the text's order


@dataclass(frozen=True, slots=True)
class ItemsWrite:
    """What writing a state takes: its item (conditional on its version) and, for a large profile,
    the parts whose bytes changed and the keys of parts it no longer uses (written and deleted with it,
    in one transaction)."""

    item: Item
    parts: list[Item] = field(default_factory=list)
    stale: list[Item] = field(default_factory=list)
    listed: tuple[tuple[int, str], ...] = ()  # the parts the item lists, as ``ProfileState.parts``

    @property
    def items(self) -> list[Item]:
        return [self.item, *self.parts]

    @property
    def alone(self) -> bool:
        """One item to write, nothing to delete: a conditional put does it."""
        return not self.parts and not self.stale


def profile_key(plugin_id: str, user_id: str) -> Item:
    return to_item({"pk": aggregate_pk(plugin_id, user_id), "sk": profile_sk(user_id)})


def part_key(plugin_id: str, user_id: str, part: int) -> Item:
    return to_item({"pk": aggregate_pk(plugin_id, user_id), "sk": profile_part_sk(user_id, part)})


def part_keys(item: Item) -> list[Item]:
    """The keys of the parts a profile's item lists (none for a profile in one item)."""
    values = from_item(item)
    return [
        part_key(values["plugin_id"], values["user_id"], n)
        for n in range(1, len(values.get("parts", [])) + 1)
    ]


def profile_write(state: ProfileState) -> ItemsWrite:
    """The items of ``state`` (at its new version), against the parts stored at its old one."""
    values = _own_values(state)
    body = _body(state)
    whole = to_item({**values, **body})
    if item_size(whole) <= PROFILE_INLINE_MAX:
        stale = [part_key(state.plugin_id, state.user_id, n) for n in range(1, len(state.parts) + 1)]
        return ItemsWrite(whole, [], stale, ())
    text = dumps_compact(body).encode("utf-8", "surrogatepass")
    chunks = [text[start : start + PART_BYTES] for start in range(0, len(text), PART_BYTES)]
    listed: list[tuple[int, str]] = []
    parts: list[Item] = []
    for number, chunk in enumerate(chunks, 1):
        digest = hashlib.blake2b(chunk, digest_size=8).hexdigest()
        stored = state.parts[number - 1] if number <= len(state.parts) else None
        if stored is not None and stored[1] == digest:
            listed.append(stored)
            continue
        listed.append((state.version, digest))
        parts.append({**part_key(state.plugin_id, state.user_id, number), **_part_values(state, chunk)})
    values["parts"] = [[version, digest] for version, digest in listed]
    if state.anonymous_ids:
        values["linked"] = True  # what ``has_been_user`` looks for, the ids being in the parts
    stale = [
        part_key(state.plugin_id, state.user_id, n) for n in range(len(chunks) + 1, len(state.parts) + 1)
    ]
    return ItemsWrite(to_item(values), parts, stale, tuple(listed))


def _own_values(state: ProfileState) -> dict[str, Any]:
    values: dict[str, Any] = {
        "pk": aggregate_pk(state.plugin_id, state.user_id),
        "sk": profile_sk(state.user_id),
        "kind": PROFILE_KIND,
        "plugin_id": state.plugin_id,
        "user_id": state.user_id,
        "version": state.version,
        "applied": {shard: [str(seq), when] for shard, (seq, when) in state.applied.items()},
        "updated_at": state.updated_at,
    }
    if state.merged_into is not None:
        values["merged_into"] = state.merged_into
    if state.is_user:
        values["is_user"] = True
    if state.first_at is not None:
        values["first_at"], values["last_at"] = state.first_at, state.last_at
    if state.pending_ids:
        values["pending_ids"] = [[event_id, at] for event_id, at in state.pending_ids]
    return values


def _body(state: ProfileState) -> dict[str, Any]:
    """Linked ids, groups and traits as the profile's item keeps them (traits are any JSON a client
    sent: kept as JSON text, as a map could not hold an empty name)."""
    body: dict[str, Any] = {}
    if state.anonymous_ids:
        body["anonymous_ids"] = state.anonymous_ids
    if state.groups:
        body["groups"] = dumps_compact({gid: _traits_out(traits) for gid, traits in state.groups.items()})
    if state.traits:
        body["traits"] = dumps_compact(_traits_out(state.traits))
    return body


def _part_values(state: ProfileState, chunk: bytes) -> dict[str, AttributeValue]:
    return to_item(
        {
            "kind": PROFILE_PART_KIND,
            "plugin_id": state.plugin_id,
            "user_id": state.user_id,
            "version": state.version,
            "body": chunk,
        }
    )


def _traits_out(traits: dict[str, TraitValue]) -> dict[str, list[Any]]:
    return {name: [t.value, t.at, t.event_id] for name, t in traits.items()}


def _traits_in(stored: dict[str, list[Any]]) -> dict[str, TraitValue]:
    return {name: TraitValue(value, int(at), str(event_id)) for name, (value, at, event_id) in stored.items()}


def is_profile(item: Item) -> bool:
    return item.get("kind", {}).get("S") == PROFILE_KIND


def is_part(item: Item) -> bool:
    return item.get("kind", {}).get("S") == PROFILE_PART_KIND


def profile_from_items(item: Item, parts: Sequence[Item] = ()) -> ProfileState | None:
    """The profile of its item and its parts in order; None when the parts are not the ones the item
    lists (missing, or written after it was read): read them again, together."""
    values = from_item(item)
    listed = tuple((int(version), str(digest)) for version, digest in values.get("parts", []))
    if listed:
        versions = [int(part["version"]["N"]) for part in parts]
        if versions != [version for version, _ in listed]:
            return None
        text = b"".join(bytes(part["body"]["B"]) for part in parts)
        values.update(json.loads(text.decode("utf-8", "surrogatepass")))
    groups = json.loads(values["groups"]) if "groups" in values else {}
    return ProfileState(
        plugin_id=values["plugin_id"],
        user_id=values["user_id"],
        version=int(values["version"]),
        applied={shard: (int(seq), int(when)) for shard, (seq, when) in values.get("applied", {}).items()},
        traits=_traits_in(json.loads(values["traits"])) if "traits" in values else {},
        groups={gid: _traits_in(traits) for gid, traits in groups.items()},
        anonymous_ids=list(values.get("anonymous_ids", [])),
        merged_into=values.get("merged_into"),
        is_user=bool(values.get("is_user", False)),
        first_at=_optional_int(values.get("first_at")),
        last_at=_optional_int(values.get("last_at")),
        pending_ids=[(event_id, int(at)) for event_id, at in values.get("pending_ids", [])],
        updated_at=int(values.get("updated_at", 0)),
        parts=listed,
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
