"""Building DynamoDB Streams records and tumbling-window invocations of the aggregate function."""

from __future__ import annotations

from typing import Any

from tracking.models.canonical import CanonicalEvent
from tracking.storage.events import event_to_item

STREAM_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/EventsTable/stream/2025-11-24T00:00:00.000"


def stream_record(
    seq: int, event: CanonicalEvent | None, name: str = "INSERT", image: Any = None
) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1764016800,
        "SequenceNumber": f"{seq:021d}",
        "SizeBytes": 100,
        "StreamViewType": "NEW_IMAGE",
    }
    if image is not None:
        dynamodb["NewImage"] = image
    elif event is not None and name != "REMOVE":
        dynamodb["NewImage"] = event_to_item(event, 1_900_000_000)
    return {
        "eventID": f"evt-{seq}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": STREAM_ARN,
    }


def invocation(shard: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": records,
        "window": {"start": "2025-11-24T20:30:00Z", "end": "2025-11-24T20:45:00Z"},
        "state": {},
        "shardId": shard,
        "eventSourceARN": STREAM_ARN,
        "isFinalInvokeForWindow": False,
        "isWindowTerminatedEarly": False,
    }


def canonical(
    key: str,
    value: Any = None,
    *,
    user: str = "u1",
    plugin: str = "p1",
    at: int = 1_764_016_800_000,
    event_id: str | None = None,
    **extra: Any,
) -> CanonicalEvent:
    return CanonicalEvent(
        plugin_id=plugin,
        user_id=user,
        key=key,
        dialect="plugin",
        event_id=event_id or f"g:{at:011x}{abs(hash((key, str(value), user))) % 10**12:012d}",
        value=value,
        event_time=at,
        received_at=extra.pop("received", at),
        **extra,
    )
