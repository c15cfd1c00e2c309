"""Profiles and links, folded from stream records exactly once (pure logic, like ``fold``).

Which records touch a profile: identify, group and alias calls, and any call carrying traits
(``context.traits``). A link (an identify with ``userId`` and ``anonymousId``, an alias from
``previousId``) touches two: the anonymous id's (``merged_into``) and the user's (``anonymous_ids``).
Whether a link holds is decided once, in sequence order, from the stored profiles: the first link
of an anonymous id wins, a link that would make a circle or a person deeper than ``LINK_DEPTH_MAX``
is refused. Replayed records are recognised by each profile's per-shard guard and decided again
from what that profile already says, so a retried batch decides the same.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tracking.aggregate.fold import StreamEvent, mark_applied
from tracking.models.canonical import CanonicalEvent
from tracking.models.people import (
    ANONYMOUS_IDS_MAX,
    GROUPS_MAX,
    LINK_DEPTH_MAX,
    TRAITS_MAX,
    ProfileState,
    TraitValue,
)
from tracking.models.request import is_client_named

ProfileKey = tuple[str, str]  # plugin, id
Role = Literal["self", "link_from", "link_to"]
IDENTITY_KINDS = frozenset({"identify", "group", "alias"})


@dataclass(frozen=True, slots=True)
class Change:
    role: Role
    other: str | None = None  # for a link: the id at its other end


@dataclass(frozen=True, slots=True)
class Link:
    """One link a record asks for: ``anonymous`` becomes part of ``user``."""

    seq: int
    plugin_id: str
    anonymous: str
    user: str
    event: CanonicalEvent


def link_of(event: CanonicalEvent) -> tuple[str, str] | None:
    """(anonymous id, user id) when the event links two ids."""
    if event.kind == "identify" and event.anonymous_id and event.anonymous_id != event.user_id:
        return event.anonymous_id, event.user_id
    if event.kind == "alias" and event.previous_id and event.previous_id != event.user_id:
        return event.previous_id, event.user_id
    return None


def profile_changes(event: CanonicalEvent) -> list[tuple[ProfileKey, Change]]:
    changes: list[tuple[ProfileKey, Change]] = []
    if event.kind in IDENTITY_KINDS or event.traits:
        changes.append(((event.plugin_id, event.user_id), Change("self")))
    link = link_of(event)
    if link is not None:
        anonymous, user = link
        changes.append(((event.plugin_id, anonymous), Change("link_from", user)))
        changes.append(((event.plugin_id, user), Change("link_to", anonymous)))
    return changes


@dataclass
class ProfileGroups:
    """A batch's records by the profile they touch, in sequence order, and the links they ask for."""

    groups: dict[ProfileKey, list[tuple[StreamEvent, list[Change]]]] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)

    def add(self, record: StreamEvent) -> None:
        event = record.event
        if record.event_name != "INSERT" or event is None:
            return
        for key, change in profile_changes(event):
            entries = self.groups.setdefault(key, [])
            if entries and entries[-1][0].seq == record.seq:
                entries[-1][1].append(change)
            else:
                entries.append((record, [change]))
        link = link_of(event)
        if link is not None:
            self.links.append(Link(record.seq, event.plugin_id, link[0], link[1], event))

    def from_side_first(self) -> list[ProfileKey]:
        """Profiles an anonymous id's link marks come first: whether each link holds is known before
        the users' profiles list their anonymous ids."""
        linked = {(link.plugin_id, link.anonymous) for link in self.links}
        return sorted(self.groups, key=lambda key: key not in linked)


def applied_before(state: ProfileState | None, shard: str, seq: int) -> bool:
    return state is not None and state.applied.get(shard, (-1, 0))[0] >= seq


def decide_links(
    links: Sequence[Link],
    stored: dict[ProfileKey, ProfileState],
    shard: str,
    fetch: Callable[[str, str], ProfileState | None],
) -> tuple[dict[int, bool], list[Link]]:
    """Whether each link holds (by sequence number), and the links refused for the first time (to be
    recorded as rejections; a replayed refusal is not recorded again)."""
    merged: dict[ProfileKey, str | None] = {key: state.merged_into for key, state in stored.items()}
    members: dict[ProfileKey, int] = {key: len(state.anonymous_ids) for key, state in stored.items()}

    def merged_into(key: ProfileKey) -> str | None:
        if key not in merged:
            found = fetch(*key)
            merged[key] = found.merged_into if found else None
            members[key] = len(found.anonymous_ids) if found else 0
        return merged[key]

    outcome: dict[int, bool] = {}
    refused: list[Link] = []
    for link in links:
        anonymous, user = (link.plugin_id, link.anonymous), (link.plugin_id, link.user)
        if applied_before(stored.get(anonymous), shard, link.seq):
            outcome[link.seq] = stored[anonymous].merged_into == link.user
            continue
        current = merged_into(anonymous)
        if current is not None:
            outcome[link.seq] = current == link.user
        else:
            outcome[link.seq] = (
                _may_link(anonymous, user, merged_into) and members.get(user, 0) < ANONYMOUS_IDS_MAX
            )
            if outcome[link.seq]:
                merged[anonymous] = link.user
                members[user] = members.get(user, 0) + 1
        if not outcome[link.seq]:
            refused.append(link)
    return outcome, refused


def _may_link(
    anonymous: ProfileKey, user: ProfileKey, merged_into: Callable[[ProfileKey], str | None]
) -> bool:
    """No circle (the user is not, through its own links, part of the anonymous id) and no person
    deeper than LINK_DEPTH_MAX."""
    node = user
    for _ in range(LINK_DEPTH_MAX):
        if node == anonymous:
            return False
        target = merged_into(node)
        if target is None:
            return True
        node = (node[0], target)
    return False


def fold_profile(
    state: ProfileState,
    shard: str,
    entries: Iterable[tuple[StreamEvent, list[Change]]],
    links: dict[int, bool],
    now_ms: int,
) -> tuple[ProfileState, bool]:
    """Apply the records this profile has not applied yet; returns the new state and whether it
    changed (nothing to write otherwise)."""
    new = copy.deepcopy(state)
    last = new.applied.get(shard, (-1, 0))[0]
    changed = False
    for record, changes in entries:
        if record.seq <= last or record.event is None:
            continue
        last = record.seq
        changed = True
        event = record.event
        for change in changes:
            if change.role == "self":
                _apply_self(new, event)
            elif change.role == "link_from" and links.get(record.seq) and new.merged_into is None:
                new.merged_into = change.other
            elif change.role == "link_to" and links.get(record.seq) and change.other not in new.anonymous_ids:
                new.anonymous_ids.append(str(change.other))
    if changed:
        mark_applied(new, shard, last, now_ms)
    return new, changed


def _apply_self(state: ProfileState, event: CanonicalEvent) -> None:
    state.seen(event.event_time)
    if event.kind in IDENTITY_KINDS and is_client_named(event.event_id):
        # Counted calls are listed on their aggregate; identity calls on the profile.
        state.pending_ids.append((event.event_id, event.event_time))
    if event.kind == "group":
        if event.group_id and (event.group_id in state.groups or len(state.groups) < GROUPS_MAX):
            group = state.groups.setdefault(event.group_id, {})
            _merge_traits(group, event)
        return
    _merge_traits(state.traits, event)


def _merge_traits(traits: dict[str, TraitValue], event: CanonicalEvent) -> None:
    for name, value in event.traits.items():
        candidate = TraitValue(value, event.event_time, event.event_id)
        current = traits.get(name)
        if current is None:
            if len(traits) < TRAITS_MAX:
                traits[name] = candidate
        elif candidate.rank() > current.rank():
            traits[name] = candidate
