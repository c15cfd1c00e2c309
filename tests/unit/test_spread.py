"""A plugin's per-user items spread over key suffixes: pages of users list each user once, in key
order, in at most two waves of parallel queries whatever the plugin's size; rollups of every shard
are found; and no suffix is listed that holds nothing."""

from __future__ import annotations

import pytest

from devstack.fakes.aggregates import FakeAggregates
from tracking.keys import USER_SUFFIXES, aggregate_pk, rollup_pk, user_suffix
from tracking.models.aggregates import AggregateState, RollupState

KEYS = ("a", "b", "c")


def store_with(users: int, keys: tuple[str, ...] = KEYS) -> FakeAggregates:
    store = FakeAggregates()
    for n in range(users):
        for key in keys:
            store.save(AggregateState(plugin_id="p1", user_id=f"user-{n:06d}", key=key, count=1))
    return store


def every_page(store: FakeAggregates, users_per_page: int) -> list[list[str]]:
    """Pages as the rows route asks for them: ``users_per_page + 1`` users' items, a page ending at
    its last whole user."""
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page = store.page_of_users("p1", after, (users_per_page + 1) * len(KEYS))
        shown = list(page.users)[:users_per_page]
        pages.append(shown)
        if not shown or not (page.more or len(page.users) > len(shown)):
            return pages
        after = shown[-1]


@pytest.mark.parametrize("users", [0, 1, 3, 40, 600, 4000])
def test_pages_list_every_user_once_in_key_order_in_at_most_two_waves(users: int) -> None:
    store = store_with(users)
    pages = every_page(store, 50)
    seen = [user for page in pages for user in page]
    expected = sorted((f"user-{n:06d}" for n in range(users)), key=lambda u: (user_suffix(u), u))
    assert seen == expected
    assert all(len(page) == 50 for page in pages[:-1])  # full pages until the last
    assert max(store.page_waves) <= 2, store.page_waves


def test_a_page_queries_about_what_it_shows_not_every_suffix() -> None:
    store = store_with(4000)  # about 8 users in each of the 512 suffixes
    queried: list[str] = []
    page_of_partition = store.table.page

    def counted(pk: str, **options: object) -> tuple[list[dict[str, object]], bool]:
        queried.append(pk)
        return page_of_partition(pk, **options)  # type: ignore[arg-type]

    store.table.page = counted  # type: ignore[method-assign]
    page = store.page_of_users("p1", None, 51 * len(KEYS))
    assert len(page.users) >= 50
    # The first suffix, then a wave sized by its density (about 8 users each): a dozen queries, not
    # one per suffix.
    assert len(queried) < 20, len(queried)


def test_a_user_larger_than_a_page_is_read_whole() -> None:
    store = FakeAggregates()
    for n in range(30):
        store.save(AggregateState(plugin_id="p1", user_id="big", key=f"k{n:02d}", count=1))
    page = store.page_of_users("p1", None, 10)
    assert len(page.users["big"]) == 30


def test_each_user_item_lands_in_its_users_suffix_and_the_suffix_is_listed() -> None:
    store = store_with(20, keys=("a",))
    suffixes = store.suffixes("p1").users
    for n in range(20):
        user = f"user-{n:06d}"
        assert store.table.peek((aggregate_pk("p1", user), f"{user}\x1fa")) is not None
        assert user_suffix(user) in suffixes
    assert len(suffixes) <= 20 < USER_SUFFIXES
    assert store_with(0).suffixes("p1").users == []


def test_rollups_of_every_shard_are_read_and_none_of_another_plugin() -> None:
    store = FakeAggregates()
    shards = [f"shard-{n}" for n in range(40)]
    for shard in shards:
        for plugin in ("p1", "p2"):
            rollup = RollupState(plugin, "2025-11-21", "visitor", "", shard, count=2, users=1)
            store.save(rollup)
    assert len({rollup_pk("p1", shard) for shard in shards}) > 1  # spread over several partitions
    found = store.rollups("p1", "2025-11-21", "2025-11-21")
    assert sorted(r.shard for r in found) == sorted(shards)
    assert {r.plugin_id for r in found} == {"p1"}
    assert store.has_rollups("p1")
    assert not store.has_rollups("p3")


def test_a_page_after_the_last_user_of_a_suffix_reads_about_a_page_on_a_busy_plugin() -> None:
    """The cursor's suffix has nothing left: the suffix after it, read beside it, is the density's
    sample, so the next wave is not sized on nothing (256 queries of a full page each)."""
    store = store_with(20_000, keys=("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"))
    first = user_suffix("user-000000")
    ending = max(f"user-{n:06d}" for n in range(20_000) if user_suffix(f"user-{n:06d}") == first)
    read: list[int] = []
    page_of_partition = store.table.page

    def counted(pk: str, **options: object) -> tuple[list[dict[str, object]], bool]:
        items, more = page_of_partition(pk, **options)  # type: ignore[arg-type]
        read.append(len(items))
        return items, more

    store.table.page = counted  # type: ignore[method-assign]
    page = store.page_of_users("p1", ending, 51 * 10)
    assert len(page.users) >= 50  # a full page, from the next suffixes
    assert min(user_suffix(u) for u in page.users) > first
    assert sum(read) <= 3 * 51 * 10  # about a page read, not 256 of them
