"""People as the dashboard reads them: an id resolves to the user it was linked to, and a user's row
and profile combine every id linked into it (its anonymous ids, and theirs). Links move nothing in
storage, so reading is where ids become one person; ids never linked are read as before, with no
extra request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tracking.models.aggregates import AggregateState, combine
from tracking.models.canonical import is_identifier
from tracking.models.people import (
    READ_DEPTH_MAX,
    READ_IDS_MAX,
    Person,
    ProfileState,
    TraitValue,
    latest_traits,
)


class PeopleReader(Protocol):
    def user_items(
        self, plugin_id: str, user_id: str
    ) -> tuple[list[AggregateState], ProfileState | None]: ...


@dataclass
class Gathered:
    """Every id of one person with its aggregates and profile, the user first."""

    user_id: str
    states: dict[str, list[AggregateState]] = field(default_factory=dict)
    profiles: dict[str, ProfileState] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return list(self.states)

    def all_states(self) -> list[AggregateState]:
        return [state for states in self.states.values() for state in states]

    def person(self) -> Person:
        profiles = [self.profiles[i] for i in self.states if i in self.profiles]
        groups: dict[str, dict[str, TraitValue]] = {}
        for profile in profiles:
            for group_id, traits in profile.groups.items():
                groups[group_id] = latest_traits(groups.get(group_id, {}), traits)
        holders: list[ProfileState | AggregateState] = [*profiles, *self.all_states()]
        times = [at for holder in holders for at in (holder.first_at, holder.last_at) if at is not None]
        return Person(
            user_id=self.user_id,
            ids=tuple(self.states),
            traits=latest_traits(*(profile.traits for profile in profiles)),
            groups=groups,
            first_at=min(times) if times else None,
            last_at=max(times) if times else None,
        )


def resolve(reader: PeopleReader, plugin_id: str, user_id: str) -> tuple[str, Gathered | None]:
    """The user ``user_id`` belongs to (itself unless it was linked), and, when the asked id is that
    user, what was read of it on the way."""
    current = user_id
    passed = {user_id}
    for _ in range(READ_DEPTH_MAX):
        states, profile = reader.user_items(plugin_id, current)
        target = profile.merged_into if profile else None
        if target is None or not is_identifier(target) or target in passed:
            first = Gathered(current, {current: states}, {current: profile} if profile else {})
            return current, first
        passed.add(target)
        current = target
    return current, None


def gather(
    reader: PeopleReader,
    plugin_id: str,
    user_id: str,
    states: list[AggregateState],
    profile: ProfileState | None,
) -> Gathered:
    """The user's items (already read) and those of every id linked into it, breadth first: the whole
    person (links are refused past LINK_DEPTH_MAX deep and ANONYMOUS_IDS_MAX wide; this follows up to
    twice that, READ_DEPTH_MAX and READ_IDS_MAX, so whatever links were made is read whole)."""
    found = Gathered(user_id, {user_id: states}, {user_id: profile} if profile else {})
    level = list(profile.anonymous_ids) if profile else []
    for _ in range(READ_DEPTH_MAX):
        following: list[str] = []
        for member in level:
            if member in found.states or len(found.states) >= READ_IDS_MAX:
                continue
            member_states, member_profile = reader.user_items(plugin_id, member)
            # Only an id that still says it belongs here (a deletion may be half way).
            if member_profile is not None and member_profile.merged_into not in (None, *found.states):
                continue
            found.states[member] = member_states
            if member_profile is not None:
                found.profiles[member] = member_profile
                following += member_profile.anonymous_ids
        if not following:
            break
        level = following
    return found


def person_of(reader: PeopleReader, plugin_id: str, user_id: str) -> tuple[str, Gathered]:
    """The person an id belongs to: (the user it resolves to, everything of that user)."""
    root, first = resolve(reader, plugin_id, user_id)
    if first is None or first.user_id != root:
        states, profile = reader.user_items(plugin_id, root)
    else:
        states, profile = first.states[root], first.profiles.get(root)
    return root, gather(reader, plugin_id, root, states, profile)


def combined(states: Iterable[AggregateState]) -> list[AggregateState]:
    """One state per key: each key's states of every id of a person, combined."""
    by_key: dict[str, list[AggregateState]] = {}
    for state in states:
        by_key.setdefault(state.key, []).append(state)
    return [combine(group) for group in by_key.values()]


def traits_out(traits: dict[str, TraitValue]) -> dict[str, Any]:
    return {name: trait.value for name, trait in sorted(traits.items())}
