"""One DynamoDB table in memory: items in DynamoDB's attribute-value form under (pk, sk), conditional
puts, a stream of changes, consumed write and read units, and injected failures."""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracking.models.storage_failures import StorageUnavailable
from tracking.storage.dynamo import AttributeValue, check_size, item_size

Item = dict[str, AttributeValue]
Key = tuple[str, str]


class ConditionFailed(Exception):
    """DynamoDB's ConditionalCheckFailedException: nothing was written."""


@dataclass(frozen=True, slots=True)
class Change:
    """A stream record: what an item was and became (None for absent)."""

    event_name: str  # INSERT, MODIFY, REMOVE
    old: Item | None
    new: Item | None


@dataclass
class Table:
    partitions: dict[str, dict[str, Item]] = field(default_factory=dict)
    sort_keys: dict[str, list[str]] = field(default_factory=dict)  # each partition's, in order
    stream: list[Change] = field(default_factory=list)
    write_units: int = 0
    read_units: float = 0.0
    writes: int = 0
    failing: list[BaseException] = field(default_factory=list)  # raised by the next writes, in order
    faults: Callable[[str], None] | None = None  # called with "read" or "write" first: may raise
    units_by_pk: Counter[str] = field(default_factory=Counter)  # write units per partition key value
    units_by_item: Counter[Key] = field(default_factory=Counter)  # write units per item
    reads_by_pk: Counter[str] = field(default_factory=Counter)  # read units (halves too) per partition key
    largest_item: int = 0  # bytes, as DynamoDB counts them

    def fail_next(self, count: int = 1, error: BaseException | None = None) -> None:
        """The next ``count`` writes fail (a throttled or unavailable table): nothing is written."""
        for _ in range(count):
            self.failing.append(error or StorageUnavailable("Storage is unavailable (fake); retry later"))

    def _check_failure(self, operation: str = "write") -> None:
        if self.faults is not None:
            self.faults(operation)
        if self.failing and operation == "write":
            raise self.failing.pop(0)

    @staticmethod
    def key_of(item: Mapping[str, AttributeValue]) -> Key:
        return item["pk"]["S"], item["sk"]["S"]

    def all_items(self) -> Iterator[Item]:
        for partition in self.partitions.values():
            yield from partition.values()

    def __len__(self) -> int:
        return sum(len(partition) for partition in self.partitions.values())

    def peek(self, key: Key) -> Item | None:
        """The item, for a test's eyes: no read units, no faults."""
        return self.partitions.get(key[0], {}).get(key[1])

    def get(self, key: Key, *, consistent: bool = True) -> Item | None:
        self._check_failure("read")
        item = self.peek(key)
        units = _read_units(item, consistent)
        self.read_units += units
        self.reads_by_pk[key[0]] += units  # type: ignore[assignment] # a Counter holds floats as well
        return item

    def put(self, item: Item, *, if_absent: bool = False, if_version: int | None = None) -> None:
        """A PutItem: ``if_absent`` is ``attribute_not_exists(pk)``, ``if_version`` is ``version =
        :expected``. Refused when DynamoDB would refuse the item (over 400 KB)."""
        check_size(item, "The item")
        self._check_failure()
        key = self.key_of(item)
        old = self.peek(key)
        if if_absent and old is not None:
            self._spend(key, _write_units(old))  # a failed condition consumes write capacity
            raise ConditionFailed(f"{key!r} exists")
        if if_version is not None and (old is None or old.get("version") != {"N": str(if_version)}):
            self._spend(key, _write_units(old or item))
            raise ConditionFailed(f"{key!r} is not at version {if_version}")
        self._write(key, old, item)

    def add_numbers(self, key: Key, sets: Mapping[str, list[int]]) -> None:
        """An UpdateItem ``ADD name :numbers, ...`` on number sets (the item made if absent)."""
        self._check_failure()
        old = self.peek(key)
        new: Item = dict(old) if old else {"pk": {"S": key[0]}, "sk": {"S": key[1]}}
        for name, numbers in sets.items():
            if numbers:
                members = set(new.get(name, {}).get("NS", [])) | {str(n) for n in numbers}
                new[name] = {"NS": sorted(members)}
        self._write(key, old, new)

    def put_all(self, items: list[Item]) -> None:
        """A transaction of puts: all or none, at twice the write units."""
        for item in items:
            check_size(item, "The item")
        self._check_failure()
        for item in items:
            key = self.key_of(item)
            self._write(key, self.peek(key), item)
            self._spend(key, _write_units(item))

    def delete(self, key: Key) -> None:
        self._check_failure()
        old = self.partitions.get(key[0], {}).pop(key[1], None)
        if old is not None:
            keys = self.sort_keys[key[0]]
            del keys[bisect.bisect_left(keys, key[1])]
        self.writes += 1
        self._spend(key, _write_units(old))
        if old is not None:
            self.stream.append(Change("REMOVE", old, None))

    def query(self, pk: str, prefix: str = "") -> list[Item]:
        """The partition's items whose sort key starts with ``prefix``, in sort-key order."""
        self._check_failure("read")
        partition, keys = self.partitions.get(pk, {}), self.sort_keys.get(pk, [])
        found = []
        for sk in itertools.islice(keys, bisect.bisect_left(keys, prefix), None):
            if not sk.startswith(prefix):
                break
            found.append(partition[sk])
        units = max(1, math.ceil(sum(item_size(item) for item in found) / 4096))
        self.read_units += units
        self.reads_by_pk[pk] += units
        return found

    def page(
        self, pk: str, *, after: str | None = None, limit: int | None = None, prefix: str = ""
    ) -> tuple[list[Item], bool]:
        """A Query's page: items after sort key ``after``, at most ``limit``, and whether it stopped
        at the limit (DynamoDB then returns a LastEvaluatedKey even when nothing follows, so a page
        may come back empty; moto looks ahead)."""
        found = [item for item in self.query(pk, prefix) if after is None or item["sk"]["S"] > after]
        if limit is None or len(found) < limit:
            return found, False
        return found[:limit], True

    def _spend(self, key: Key, units: int) -> None:
        self.write_units += units
        self.units_by_pk[key[0]] += units
        self.units_by_item[key] += units

    def _write(self, key: Key, old: Item | None, new: Item) -> None:
        if old is None:
            bisect.insort(self.sort_keys.setdefault(key[0], []), key[1])
        self.partitions.setdefault(key[0], {})[key[1]] = new
        self.writes += 1
        self._spend(key, _write_units(new if old is None else max(old, new, key=item_size)))
        self.largest_item = max(self.largest_item, item_size(new))
        if old is None:
            self.stream.append(Change("INSERT", None, new))
        elif old != new:  # DynamoDB emits nothing for an overwrite that changes nothing
            self.stream.append(Change("MODIFY", old, new))


def _write_units(item: Mapping[str, Any] | None) -> int:
    return max(1, math.ceil(item_size(item) / 1024)) if item else 1


def _read_units(item: Mapping[str, Any] | None, consistent: bool) -> float:
    units = max(1, math.ceil(item_size(item) / 4096)) if item else 1
    return units if consistent else units / 2
