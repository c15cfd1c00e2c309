"""A large profile's items through the aggregates store, on moto and on AWS's DynamoDB Local (real
transactions): written in one transaction with its parts, read back whole by every read path, a stale
copy's write refused without touching the parts, and deleted whole."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.local import dynamodb
from devstack.local.template import Template
from tests.unit.test_profile_items import ITEM_MAX, largest
from tracking.json_text import dumps_compact
from tracking.keys import aggregate_pk, profile_sk
from tracking.models.people import ProfileState, TraitValue
from tracking.models.storage_failures import Conflict
from tracking.storage.aggregates import AggregateStore
from tracking.storage.dynamo import item_size, to_item

TEMPLATE = Template.load()
TABLE = "AggregatesTable"


@pytest.fixture(scope="module")
def local_database() -> Iterator[dynamodb.Database]:
    database = dynamodb.start(None)
    yield database
    database.stop()


@pytest.fixture(params=["moto", pytest.param("dynamodb-local", marks=pytest.mark.e2e)])
def db(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh aggregates table on moto or DynamoDB Local; yields a DynamoDB client."""
    definition = TEMPLATE.table_definitions()[TABLE]["create"]
    if request.param == "moto":
        with mock_aws():
            client = boto3.client("dynamodb")
            client.create_table(**definition)
            yield client
        return
    database: dynamodb.Database = request.getfixturevalue("local_database")
    client = database.client()
    if TABLE in client.list_tables()["TableNames"]:
        client.delete_table(TableName=TABLE)
    client.create_table(**definition)
    yield client


def profile_items(db: Any, user_id: str) -> list[dict[str, Any]]:
    items = db.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    mine = [i for i in items if "kind" in i and i["user_id"]["S"] == user_id]
    return sorted(mine, key=lambda i: i["sk"]["S"])


def test_a_large_profile_is_written_in_parts_and_every_read_gets_it_whole(db: Any) -> None:
    store = AggregateStore(db, TABLE)
    state = largest()
    state.is_user = False  # only its linked ids say it has been a user
    store.save(state)
    items = profile_items(db, "big")
    assert [i["kind"]["S"] for i in items] == ["profile"] + ["profile_part"] * len(state.parts)
    assert len(state.parts) >= 4
    assert max(item_size(i) for i in items) <= ITEM_MAX
    for found in (
        store.get_profile("p", "big"),
        store.load([], [], "shard-1", [("p", "big")])[2][("p", "big")],
        store.user_items("p", "big")[1],
        next(iter(store.users("p"))).profiles["big"],
        store.page_of_users("p", None, 3).profiles["big"],  # a page cut within its parts
    ):
        assert found is not None
        assert (found.traits, found.groups, found.anonymous_ids) == (
            state.traits,
            state.groups,
            state.anonymous_ids,
        )
        assert found.version == state.version
    assert store.has_been_user("p", "big")
    assert not store.has_been_user("p", "nobody")


def test_a_stale_copys_write_is_refused_and_leaves_the_parts_as_they_were(db: Any) -> None:
    store = AggregateStore(db, TABLE)
    state = largest()
    store.save(state)
    stale = copy.deepcopy(state)
    last = sorted(state.traits)[-1]
    state.traits[last] = TraitValue("first writer", 20, "f")
    store.save(state)
    stale.traits[last] = TraitValue("second writer", 21, "g")
    with pytest.raises(Conflict):
        store.save(stale)
    found = store.get_profile("p", "big")
    assert found is not None
    assert found.traits[last].value == "first writer"
    assert found.version == state.version == 2


def test_a_profile_that_shrinks_and_one_deleted_leave_no_part_behind(db: Any) -> None:
    store = AggregateStore(db, TABLE)
    state = largest()
    store.save(state)
    state.traits, state.groups, state.anonymous_ids = {}, {}, ["a"]
    store.save(state)
    assert [i["kind"]["S"] for i in profile_items(db, "big")] == ["profile"]
    big = largest()
    big.user_id = "other"
    store.save(big)
    assert len(profile_items(db, "other")) > 1
    assert store.delete_user_items("p", "other", 100) == (0, 1, False)
    assert profile_items(db, "other") == []
    assert store.get_profile("p", "other") is None
    assert isinstance(store.get_profile("p", "big"), ProfileState)


def test_a_large_profile_an_older_version_kept_in_one_item_is_read_then_cut_in_parts(db: Any) -> None:
    # Given a 130 KB profile in one item, as the version before profile parts wrote it
    state = largest()
    traits = {name: [t.value, t.at, t.event_id] for name, t in state.traits.items()}
    old = {
        "pk": aggregate_pk("p", "big"),
        "sk": profile_sk("big"),
        "kind": "profile",
        "plugin_id": "p",
        "user_id": "big",
        "version": 3,
        "applied": {"shard-1": ["7", 1]},
        "updated_at": 1,
        "is_user": True,
        "anonymous_ids": state.anonymous_ids,
        "traits": dumps_compact(traits),
    }
    db.put_item(TableName=TABLE, Item=to_item(old))
    assert item_size(to_item(old)) > 130_000
    # When the aggregator reads it and writes it again
    store = AggregateStore(db, TABLE)
    found = store.get_profile("p", "big")
    assert found is not None
    assert (found.traits, found.anonymous_ids, found.version) == (state.traits, state.anonymous_ids, 3)
    found.first_at, found.last_at = 1, 5
    store.save(found)
    # Then it is its own item and parts, and reads back the same
    items = profile_items(db, "big")
    assert len(items) > 2
    assert max(item_size(i) for i in items) <= ITEM_MAX
    again = store.get_profile("p", "big")
    assert again is not None
    assert (again.traits, again.anonymous_ids, again.version, again.last_at) == (
        state.traits,
        state.anonymous_ids,
        4,
        5,
    )
