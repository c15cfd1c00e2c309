"""A large profile is several items of at most 62 KB (``storage.profile_items``): it reads back whole, a
write rewrites only the parts whose bytes changed, and a reader never assembles parts of two versions."""

from __future__ import annotations

import copy

from tracking.models.people import ProfileState, TraitValue
from tracking.storage.aggregate_items import user_states, versioned
from tracking.storage.dynamo import item_size
from tracking.storage.profile_items import ItemsWrite, is_part, profile_from_items

ITEM_MAX = 62 * 1024


def largest() -> ProfileState:
    """The most a profile keeps: 100 linked ids of 512 bytes, 50 groups of 512-byte ids with 100
    traits among them, 100 traits, names of 256 bytes and values of 512."""
    state = ProfileState(plugin_id="p", user_id="big", is_user=True, first_at=1, last_at=2)
    state.anonymous_ids = [f"{n:03d}" + "a" * 509 for n in range(100)]
    state.traits = {f"{n:03d}" + "n" * 253: TraitValue("v" * 510, 10, "e" * 64) for n in range(100)}
    state.groups = {
        f"{n:03d}" + "G" * 509: {
            f"{n:02d}{k}" + "g" * 253: TraitValue("w" * 510, 10, "e" * 64) for k in range(2)
        }
        for n in range(50)
    }
    state.applied = {"shard-1": (7, 1)}
    return state


def write(state: ProfileState) -> ItemsWrite:
    with versioned(state) as (written, _):
        return written


def stored_after(state: ProfileState, writes: list[ItemsWrite]) -> dict[str, dict[str, object]]:
    """What the table holds after these writes, by sort key."""
    table: dict[str, dict[str, object]] = {}
    for done in writes:
        for item in done.items:
            table[item["sk"]["S"]] = item
        for key in done.stale:
            table.pop(key["sk"]["S"], None)
    return table


def test_a_large_profile_is_items_of_at_most_62_kb_that_read_back_whole() -> None:
    state = largest()
    done = write(state)
    assert len(done.parts) >= 4
    assert max(item_size(item) for item in done.items) <= ITEM_MAX
    assert "anonymous_ids" not in done.item
    assert done.item["linked"] == {"BOOL": True}
    found = profile_from_items(done.item, done.parts)
    assert found is not None
    assert (found.traits, found.groups, found.anonymous_ids) == (
        state.traits,
        state.groups,
        state.anonymous_ids,
    )
    assert (found.version, found.parts, found.is_user, found.applied) == (1, state.parts, True, state.applied)


def test_a_small_profile_stays_one_item() -> None:
    state = ProfileState(plugin_id="p", user_id="u", traits={"plan": TraitValue("pro", 1, "e")})
    done = write(state)
    assert done.alone
    assert not done.listed
    assert profile_from_items(done.item) == state


def test_a_changed_trait_rewrites_only_the_parts_from_it_on() -> None:
    state = largest()
    first = write(state)
    last_trait = sorted(state.traits)[-1]
    state.traits[last_trait] = TraitValue("changed", 11, "f")
    second = write(state)
    # the linked ids and groups come first in the text: their parts are not written again
    assert 0 < len(second.parts) < len(first.parts)
    assert second.listed[0] == first.listed[0]
    table = stored_after(state, [first, second])
    parts = [item for sk, item in sorted(table.items()) if is_part(item)]
    found = profile_from_items(table[first.item["sk"]["S"]], parts)
    assert found is not None
    assert found.traits[last_trait].value == "changed"


def test_a_profile_that_shrinks_deletes_the_parts_it_no_longer_uses() -> None:
    state = largest()
    first = write(state)
    state.groups, state.traits = {}, {}
    second = write(state)
    assert len(second.stale) == len(first.parts) - len(second.parts)
    state.anonymous_ids = state.anonymous_ids[:3]
    third = write(state)
    assert third.listed == ()
    assert len(third.stale) == len(second.listed)
    table = stored_after(state, [first, second, third])
    assert list(table) == [first.item["sk"]["S"]]
    assert profile_from_items(table[first.item["sk"]["S"]]) == state


def test_a_reader_that_meets_a_part_newer_than_listed_reads_the_profile_again() -> None:
    # Given a profile's item read at one version and its parts at the next (written in between)
    state = largest()
    old = write(state)
    newer = copy.deepcopy(state)
    newer.traits = {name: TraitValue("x", 20, "g") for name in state.traits}
    new = write(newer)
    stored = stored_after(newer, [old, new])
    torn = [old.item, *(item for _, item in sorted(stored.items()) if is_part(item))]
    assert profile_from_items(old.item, torn[1:]) is None
    # Then reading the users' items re-reads that profile whole, once
    asked: list[tuple[str, str]] = []

    def reread(plugin_id: str, user_id: str) -> ProfileState:
        asked.append((plugin_id, user_id))
        return newer

    assert list(user_states(torn, reread)) == [newer]
    assert asked == [("p", "big")]
    # And parts cut off by a page's end are read again too, while a whole profile is not
    assert list(user_states([old.item, *old.parts[:1]], reread)) == [newer]
    asked.clear()
    (whole,) = user_states([old.item, *old.parts], reread)
    assert asked == []
    assert whole.traits == state.traits
