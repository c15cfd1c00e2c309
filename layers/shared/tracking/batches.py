"""Powertools' partial batch response for handlers that take a whole batch at once (they write once
per group, not once per record): the handler answers which records failed, by their key (a stream
record's sequence number, a queue message's id); Powertools reports those to Lambda."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

R = TypeVar("R")


class GroupedBatchProcessor(BatchProcessor, Generic[R]):
    """The handler gets every record of the batch (as ``record_class``) and answers the failed ones
    by ``key``; if all failed and ``raise_on_entire_batch_failure``, Powertools raises so that Lambda
    retries (or bisects) the batch."""

    def __init__(
        self,
        event_type: EventType,
        record_class: Callable[[dict[str, Any]], R],
        key: Callable[[R], Hashable],
        *,
        raise_on_entire_batch_failure: bool = True,
    ) -> None:
        super().__init__(event_type=event_type, raise_on_entire_batch_failure=raise_on_entire_batch_failure)
        self._record_class = record_class
        self._key = key

    def process(self) -> list[tuple[Any, ...]]:
        records = [self._record_class(record) for record in self.records]
        failures: Mapping[Hashable, BaseException] = self.handler(records)
        results: list[tuple[Any, ...]] = []
        for record in records:
            error = failures.get(self._key(record))
            if error is None:
                results.append(self.success_handler(record, None))
            else:
                results.append(self.failure_handler(record, (type(error), error, error.__traceback__)))
        return results
