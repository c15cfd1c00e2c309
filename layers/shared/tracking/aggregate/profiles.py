"""Profiles and links, folded from stream records exactly once (pure logic, like ``fold``).

Which records touch a profile: identify, group and alias calls, and any call carrying traits
(``context.traits``). A link (an identify with ``userId`` and ``anonymousId``, an alias from
``previousId``) touches two: the anonymous id's (``merged_into``) and the user's (``anonymous_ids``).
Whether a link holds is decided once, in sequence order, from the stored profiles: the first link
of an anonymous id wins; a link is refused when its anonymous id has been a user (the user id of any
call, or ids linked to it: two users never merge through a public write key), or when it would make
a circle or a person deeper than ``LINK_DEPTH_MAX`` links or wider than ``ANONYMOUS_IDS_MAX`` ids.
Replayed records are recognised by each profile's per-shard guard and decided again
from what that profile already says, so a retried batch decides the same.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tracking.aggregate.fold import StreamRecord, mark_applied
from tracking.models.canonical import CanonicalEvent, utf8_length
from tracking.models.people import (
    ANONYMOUS_IDS_MAX,
    GROUP_TRAITS_MAX,
    GROUPS_MAX,
    LINK_DEPTH_MAX,
    READ_DEPTH_MAX,
    READ_IDS_MAX,
    TRAIT_NAME_MAX_BYTES,
    TRAITS_MAX,
    ProfileState,
    TraitValue,
)

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

    groups: dict[ProfileKey, list[tuple[StreamRecord, list[Change]]]] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)

    def add(self, record: StreamRecord) -> None:
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


class Identities(Protocol):
    """What a link decision reads: profiles (consistently, many at once) and, for an id about to be
    linked into a user, whether any of its items says it has been a user itself."""

    def read_profiles(self, keys: Sequence[ProfileKey]) -> dict[ProfileKey, ProfileState]: ...
    def has_been_user(self, plugin_id: str, user_id: str) -> bool: ...


class _People:
    """Profiles as a batch's link decisions see them: what is stored, read on demand and kept, with
    the links this batch has already accepted laid over it."""

    def __init__(self, stored: dict[ProfileKey, ProfileState], identities: Identities) -> None:
        self._profiles: dict[ProfileKey, ProfileState | None] = dict(stored)
        self._identities = identities
        self._merged: dict[ProfileKey, str] = {}
        self._added: dict[ProfileKey, list[str]] = {}

    def _read(self, keys: Iterable[ProfileKey]) -> None:
        missing = [key for key in dict.fromkeys(keys) if key not in self._profiles]
        if missing:
            found = self._identities.read_profiles(missing)
            self._profiles.update({key: found.get(key) for key in missing})

    def profile(self, key: ProfileKey) -> ProfileState | None:
        self._read([key])
        return self._profiles[key]

    def merged_into(self, key: ProfileKey) -> str | None:
        if key in self._merged:
            return self._merged[key]
        found = self.profile(key)
        return found.merged_into if found else None

    def linked(self, key: ProfileKey) -> list[str]:
        found = self.profile(key)
        return [*(found.anonymous_ids if found else ()), *self._added.get(key, ())]

    def link(self, anonymous: ProfileKey, user: ProfileKey) -> None:
        self._merged[anonymous] = user[1]
        self._added.setdefault(user, []).append(anonymous[1])

    def is_user(self, key: ProfileKey, users_in_batch: frozenset[ProfileKey]) -> bool:
        """It has been a user: the user id of a call (in this batch or stored), or ids are linked to it."""
        if key in users_in_batch or self.linked(key):
            return True
        found = self.profile(key)
        return (found is not None and found.is_user) or self._identities.has_been_user(*key)

    def ancestors(self, key: ProfileKey) -> list[ProfileKey] | None:
        """The ids above ``key``, nearest first, up to its person's user (None: past what is read)."""
        found: list[ProfileKey] = []
        node = key
        while (target := self.merged_into(node)) is not None:
            node = (node[0], target)
            if node in found or node == key or len(found) >= READ_DEPTH_MAX:
                return None  # a circle, or a chain no link should have made
            found.append(node)
        return found

    def size(self, root: ProfileKey, most: int) -> int:
        """The ids of the person ``root`` is the user of (itself included), counted up to ``most``."""
        seen = {root}
        level = [root]
        while level and len(seen) <= most:
            self._read((root[0], child) for key in level for child in self.linked(key))
            following = []
            for key in level:
                for child in self.linked(key):
                    member = (root[0], child)
                    if member not in seen:
                        seen.add(member)
                        following.append(member)
            level = following
        return len(seen)


def decide_links(
    links: Sequence[Link],
    stored: dict[ProfileKey, ProfileState],
    shard: str,
    identities: Identities,
    users_in_batch: frozenset[ProfileKey] = frozenset(),
) -> tuple[dict[int, bool], list[Link]]:
    """Whether each link holds (by sequence number), and the links refused for the first time (to be
    recorded as rejections; a replayed refusal is not recorded again).

    A link holds when its anonymous id is not part of a user yet (the first link wins), has never been
    a user itself (two users never merge through a public write key), and the person it joins stays
    within ``LINK_DEPTH_MAX`` links deep and ``ANONYMOUS_IDS_MAX`` ids besides its user."""
    people = _People(stored, identities)
    outcome: dict[int, bool] = {}
    refused: list[Link] = []
    for link in links:
        anonymous, user = (link.plugin_id, link.anonymous), (link.plugin_id, link.user)
        if applied_before(stored.get(anonymous), shard, link.seq):
            outcome[link.seq] = stored[anonymous].merged_into == link.user
            continue
        current = people.merged_into(anonymous)
        if current is not None:
            holds = current == link.user
        else:
            holds = _may_link(people, anonymous, user, users_in_batch)
            if holds:
                people.link(anonymous, user)
        outcome[link.seq] = holds
        if not holds:
            refused.append(link)
    return outcome, refused


def _may_link(
    people: _People, anonymous: ProfileKey, user: ProfileKey, users_in_batch: frozenset[ProfileKey]
) -> bool:
    if people.is_user(anonymous, users_in_batch):
        return False
    above = people.ancestors(user)
    if above is None or anonymous in above or len(above) + 1 > LINK_DEPTH_MAX:
        return False
    root = above[-1] if above else user
    return people.size(root, ANONYMOUS_IDS_MAX + 1) + 1 <= ANONYMOUS_IDS_MAX + 1


def fold_profile(
    state: ProfileState,
    shard: str,
    entries: Iterable[tuple[StreamRecord, list[Change]]],
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
                _apply_self(new, event, listed=record.by_id)
            elif change.role == "link_from" and links.get(record.seq) and new.merged_into is None:
                new.merged_into = change.other
            elif change.role == "link_to" and links.get(record.seq) and _room_for(new, change.other):
                new.anonymous_ids.append(str(change.other))
    if changed:
        mark_applied(new, shard, last, now_ms)
    return new, changed


def _room_for(state: ProfileState, member: str | None) -> bool:
    """A newly linked id is listed, up to READ_IDS_MAX (link decisions keep a person far below)."""
    return member not in state.anonymous_ids and len(state.anonymous_ids) < READ_IDS_MAX


def _apply_self(state: ProfileState, event: CanonicalEvent, *, listed: bool) -> None:
    state.seen(event.event_time)
    state.is_user = state.is_user or event.identified
    if event.kind in IDENTITY_KINDS and listed:
        # Counted calls are listed on their aggregate; identity calls on the profile.
        state.pending_ids.append((event.event_id, event.event_time))
    if event.kind == "group":
        if event.group_id and (event.group_id in state.groups or len(state.groups) < GROUPS_MAX):
            group = state.groups.setdefault(event.group_id, {})
            room = GROUP_TRAITS_MAX - sum(len(traits) for traits in state.groups.values())
            _merge_traits(group, event, room)
        return
    _merge_traits(state.traits, event, TRAITS_MAX - len(state.traits))


def _merge_traits(traits: dict[str, TraitValue], event: CanonicalEvent, room: int) -> None:
    """The event's traits, each the latest by (event time, event id); ``room`` new names at most."""
    for name, value in event.traits.items():
        if utf8_length(name) > TRAIT_NAME_MAX_BYTES:
            continue
        current = traits.get(name)
        if current is None and room <= 0:
            continue
        candidate = TraitValue.kept(value, event.event_time, event.event_id)
        if current is None:
            traits[name] = candidate
            room -= 1
        elif candidate.rank() > current.rank():
            traits[name] = candidate
