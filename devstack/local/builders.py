"""Events as AWS delivers them to the functions, built the same way for the tests, the benchmarks and
the local stack: API Gateway REST proxy events for a route of ``template.yaml``, DynamoDB Streams
records of stored events, tumbling-window stream invocations, and canonical events to store."""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import urlencode

from devstack.local.apigw import match, proxy_event
from devstack.local.template import Route, Template
from tracking.models.canonical import CanonicalEvent
from tracking.storage.events import event_to_item

STREAM_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/EventsTable/stream/2025-11-24T00:00:00.000"
# When a built stream record's event expires (the events table's TTL attribute).
EXPIRES_AT = 1_900_000_000


@cache
def _routes() -> list[Route]:
    return Template.load().routes()


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    ip: str = "198.51.100.7",
    raw: bytes | None = None,
    stage: str = "test",
) -> dict[str, Any]:
    """The proxy event API Gateway hands the function for this request (JSON ``body`` unless ``raw``)."""
    found = match(_routes(), method, path)
    assert found is not None, f"no route {method} {path} in template.yaml"
    route, params = found
    payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return proxy_event(
        method=method,
        raw_path=path,
        query=urlencode(query or {}),
        headers=list(all_headers.items()),
        body=payload,
        source_ip=ip,
        route=route,
        path_parameters=params,
        stage=stage,
    )


def stream_record(
    seq: int, event: CanonicalEvent | None, name: str = "INSERT", image: Any = None
) -> dict[str, Any]:
    """The stream record of storing ``event`` (or of ``image``, an item as stored), as Lambda delivers it."""
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1764016800,
        "SequenceNumber": f"{seq:021d}",
        "SizeBytes": 100,
        "StreamViewType": "NEW_IMAGE",
    }
    if image is not None:
        dynamodb["NewImage"] = image
    elif event is not None and name != "REMOVE":
        dynamodb["NewImage"] = event_to_item(event, EXPIRES_AT)
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
    """A tumbling-window invocation of the aggregate function with one shard's records."""
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
    """A plugin-dialect event as ingest would store it (``received`` sets its arrival, default ``at``)."""
    return CanonicalEvent(
        plugin_id=plugin,
        user_id=user,
        key=key,
        dialect=extra.pop("dialect", "plugin"),
        event_id=event_id or f"g:{at:011x}{abs(hash((key, str(value), user))) % 10**12:012d}",
        value=value,
        event_time=at,
        received_at=extra.pop("received", at),
        **extra,
    )
