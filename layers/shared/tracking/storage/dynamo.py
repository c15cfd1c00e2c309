"""A DynamoDB client and the plumbing every store shares: attribute (de)serialization, error mapping.

The client is botocore's: boto3's resource layer and s3transfer are not needed and cost cold start.
``AWS_ENDPOINT_URL_DYNAMODB`` points it at DynamoDB Local, so nothing here knows it runs locally.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from functools import cache, cached_property
from typing import Any, TypeVar

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tracking.models.storage_failures import ItemTooLarge, StorageUnavailable

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

# Errors after which the same request may succeed later: answered 503, never 500.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        "LimitExceededException",
        "ResourceNotFoundException",  # a table not yet created (local start-up) or being replaced
        "TooManyRequestsException",  # API Gateway's management API throttling
    }
)

# Standard retry mode: exponential backoff with jitter on throttling and 5xx, then the error surfaces.
# Its budget is part of the ingest function's timeout (see template.yaml): 3 attempts of at most
# 1 s to connect and 2 s to read, and backoff of at most 1 + 2 s, is at most 12 s a call, and a write
# whose answer was lost takes one confirming read more; ingest starts a request's writes within 4 s,
# so a call of one write answers within 4 + 12 + 12 s, inside the function's 28 s and API Gateway's
# 29 s (a client-named call is two writes: template.yaml says what that means). Parameters are
# built by this package, never by clients: checking them against the service model again on every
# call costs CPU for nothing (DynamoDB validates them anyway).
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=1,
    read_timeout=2,
    tcp_keepalive=True,
    parameter_validation=False,
    max_pool_connections=64,  # a page of rows reads suffixes in parallel (storage.spread)
)


@cache
def aws_client(service: str) -> Any:
    """One client per AWS service and container, made on first use, with the configuration above."""
    return botocore.session.get_session().create_client(service, config=CLIENT_CONFIG)


def client() -> Any:
    return aws_client("dynamodb")


class Workers:
    """Calls to storage run side by side on the client's connections: a thread pool started on first
    use (a container that never needs it starts none); one call runs in the caller's thread."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._name)

    def map(self, function: Callable[[T], R], arguments: Sequence[T]) -> list[R]:
        """``function`` of each argument, in order."""
        if len(arguments) <= 1:
            return [function(argument) for argument in arguments]
        return list(self._pool.map(function, arguments))


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn throttling, outages and timeouts into :class:`StorageUnavailable` (a 503 for clients)."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in RETRYABLE_CODES or _cancelled_for_capacity(exc):
            logger.warning("storage unavailable", extra={"action": action, "error": error_code(exc)})
            raise StorageUnavailable(f"Storage is unavailable ({action}); retry later") from exc
        raise
    except BotoCoreError as exc:
        logger.warning("storage unreachable", extra={"action": action, "error": repr(exc)})
        raise StorageUnavailable(f"Storage is unreachable ({action}); retry later") from exc


def cancellation_codes(exc: ClientError) -> set[str]:
    """Why a transaction was cancelled, one code per item that had a reason."""
    reasons = exc.response.get("CancellationReasons") or []
    return {str(reason.get("Code")) for reason in reasons} - {"None"}


def _cancelled_for_capacity(exc: ClientError) -> bool:
    """A transaction cancelled by throttling or a conflict, not by one of its conditions."""
    return error_code(exc) == "TransactionCanceledException" and (
        "ConditionalCheckFailed" not in cancellation_codes(exc)
    )


def query(
    client: Any, table: str, condition: str, values: Mapping[str, Any], action: str, **options: Any
) -> dict[str, Any]:
    """One ``Query`` page: the key condition with its values (plain Python), storage errors mapped."""
    with storage_errors(action):
        answer: dict[str, Any] = client.query(
            TableName=table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=to_item(values),
            **options,
        )
    return answer


def query_all(
    client: Any, table: str, condition: str, values: Mapping[str, Any], action: str, **options: Any
) -> Iterator[Item]:
    """Every item a ``Query`` finds, page after page."""
    start: dict[str, Any] = {}
    while True:
        answer = query(client, table, condition, values, action, **options, **start)
        yield from answer.get("Items", [])
        if "LastEvaluatedKey" not in answer:
            return
        start = {"ExclusiveStartKey": answer["LastEvaluatedKey"]}


BATCH_WRITE_MAX = 25
BATCH_GET_MAX = 100
UNPROCESSED_RETRIES = 6


def batch_delete(
    client: Any,
    table: str,
    keys: list[dict[str, AttributeValue]],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Delete these items, 25 to a request, retrying what DynamoDB leaves unprocessed (deleting an
    item that is gone already changes nothing, so a retried deletion is safe)."""
    batch_write(client, table, [{"DeleteRequest": {"Key": key}} for key in keys], sleep)


def batch_put(
    client: Any,
    table: str,
    items: list[dict[str, AttributeValue]],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Put these items (whole: writing the same item again changes nothing), 25 to a request."""
    batch_write(client, table, [{"PutRequest": {"Item": item}} for item in items], sleep)


def batch_write(
    client: Any,
    table: str,
    requests: list[dict[str, Any]],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Write requests that may be repeated safely, 25 to a request, retrying what DynamoDB leaves
    unprocessed."""
    for start in range(0, len(requests), BATCH_WRITE_MAX):
        pending: dict[str, Any] = {table: requests[start : start + BATCH_WRITE_MAX]}
        for attempt in range(UNPROCESSED_RETRIES + 1):
            with storage_errors("write items"):
                answer = client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                break
            if attempt == UNPROCESSED_RETRIES:
                raise StorageUnavailable("Storage is throttling writes")
            sleep(min(0.05 * 2**attempt, 1.0))


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[dict[str, AttributeValue]],
    action: str,
    sleep: Callable[[float], None] = time.sleep,
    *,
    consistent: bool = False,
) -> list[dict[str, AttributeValue]]:
    """Every item of these keys that exists, 100 keys to a request, what DynamoDB leaves unprocessed
    read again (after a pause); raises ``StorageUnavailable`` if it keeps leaving some.
    ``consistent``: strongly consistent reads (twice the price)."""
    items: list[dict[str, AttributeValue]] = []
    for start in range(0, len(keys), BATCH_GET_MAX):
        pending: dict[str, Any] = {
            table: {"Keys": list(keys[start : start + BATCH_GET_MAX]), "ConsistentRead": consistent}
        }
        for attempt in range(UNPROCESSED_RETRIES + 1):
            with storage_errors(action):
                answer = client.batch_get_item(RequestItems=pending)
            items.extend(answer.get("Responses", {}).get(table, []))
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                break
            if attempt == UNPROCESSED_RETRIES:
                raise StorageUnavailable(f"Storage is throttling reads ({action})")
            sleep(min(0.05 * 2**attempt, 1.0))
    return items


# DynamoDB's limit on one item, counted by its own rules (``item_size``).
ITEM_MAX_BYTES = 400 * 1024


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def attr_size(attr: AttributeValue) -> int:
    """Bytes one attribute value takes by DynamoDB's rules: strings and binaries their length (UTF-8),
    a number 1 byte per two significant digits plus 1, booleans and nulls 1, lists and maps 3 bytes
    plus 1 per element plus their elements (a map's names too)."""
    ((kind, value),) = attr.items()
    if kind == "S":
        return _utf8(value)
    if kind == "N":
        digits = value.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(value)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attr_size(element) for element in value)
    if kind == "M":
        return 3 + sum(1 + _utf8(name) + attr_size(element) for name, element in value.items())
    if kind == "SS":
        return sum(_utf8(member) for member in value)
    if kind == "NS":
        return sum(attr_size({"N": member}) for member in value)
    raise TypeError(f"unknown attribute type {kind}")


def item_size(item: Mapping[str, AttributeValue]) -> int:
    """An item's size as DynamoDB counts it against its 400 KB limit: names plus values."""
    return sum(_utf8(name) + attr_size(attr) for name, attr in item.items())


def check_size(item: Item, what: str) -> Item:
    """The item, or :class:`ItemTooLarge` before DynamoDB refuses it."""
    size = item_size(item)
    if size > ITEM_MAX_BYTES:
        raise ItemTooLarge(what, size, ITEM_MAX_BYTES)
    return item


def to_attr(value: Any) -> AttributeValue:
    """Python value -> DynamoDB attribute value (numbers are exact decimals)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, Decimal)):
        return {"N": str(value)}
    if isinstance(value, float):
        return {"N": repr(value)}
    if isinstance(value, bytes):
        return {"B": value}
    if isinstance(value, Mapping):
        return {"M": {str(k): to_attr(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attr(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def from_attr(attr: AttributeValue) -> Any:
    """DynamoDB attribute value -> Python value (numbers come back as ``Decimal``)."""
    ((kind, value),) = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return Decimal(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "B":
        return value
    if kind == "SS":
        return set(value)
    if kind == "NS":
        return {Decimal(v) for v in value}
    raise TypeError(f"unknown attribute type {kind}")


def to_item(values: Mapping[str, Any]) -> Item:
    return {name: to_attr(value) for name, value in values.items() if value is not None}


def from_item(item: Mapping[str, AttributeValue]) -> dict[str, Any]:
    return {name: from_attr(attr) for name, attr in item.items()}
