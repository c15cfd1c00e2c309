"""The service counts an item's size the way DynamoDB does: an item of exactly 400 KB by
``item_size`` is stored by DynamoDB Local, one byte more is refused, whatever the item holds
(ASCII, emoji, lists, maps, numbers). Every bound this service states for an item rests on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.local import dynamodb
from tracking.storage.dynamo import ITEM_MAX_BYTES, item_size, to_item

pytestmark = pytest.mark.e2e

Shape = Callable[[int], dict[str, Any]]
SHAPES: dict[str, Shape] = {
    "ascii": lambda n: {"s": "x" * n},
    "emoji": lambda n: {"s": "😀" * (n // 4) + "x" * (n % 4)},
    "list": lambda n: {"l": ["x" * 1000] * (n // 1001) + ["x" * max(0, n % 1001 - 1)]},
    # each entry takes 17 bytes: 1, its 6-byte name, its 10-byte value
    "map": lambda n: {"m": {f"k{i:05d}": "x" * 10 for i in range(n // 17)}, "pad": "x" * (n % 17)},
    "numbers": lambda n: {"n": [12345678901234567890123456789012345678] * (n // 21), "pad": "x" * (n % 21)},
}


@pytest.fixture(scope="module")
def table() -> Iterator[Any]:
    database = dynamodb.start(None)
    try:
        client = database.client()
        client.create_table(
            TableName="sizes",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
    finally:
        database.stop()


def largest_fitting(shape: Shape) -> int:
    low, high = 1_000, ITEM_MAX_BYTES
    while low < high:
        middle = (low + high + 1) // 2
        if item_size(to_item({"pk": "k", **shape(middle)})) <= ITEM_MAX_BYTES:
            low = middle
        else:
            high = middle - 1
    return low


def stored(client: Any, item: dict[str, Any]) -> str:
    """What DynamoDB Local answered: ``ok`` or its error code."""
    try:
        client.put_item(TableName="sizes", Item=item)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


@pytest.mark.parametrize("shape", SHAPES)
def test_item_size_is_dynamodbs_own_count(table: Any, shape: str) -> None:
    # Given the largest item of this shape that item_size says fits, and the next one
    size = largest_fitting(SHAPES[shape])
    fits = to_item({"pk": "k", **SHAPES[shape](size)})
    over = next(
        item
        for n in range(size + 1, size + 100)
        if item_size(item := to_item({"pk": "k", **SHAPES[shape](n)})) > ITEM_MAX_BYTES
    )
    assert ITEM_MAX_BYTES - 40 <= item_size(fits) <= ITEM_MAX_BYTES
    # Then DynamoDB Local stores the first and refuses the second
    assert stored(table, fits) == "ok"
    assert stored(table, over) == "ValidationException"
