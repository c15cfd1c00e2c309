"""The events table's changes as Kinesis Data Streams for DynamoDB writes them (JSON, each image in
DynamoDB's attribute-value form, binary values as base64 text): the lake's Firehose and the
destinations' router read the same records, and keep the same ones, the stored events (an INSERT of
an event item: claims, index items, rejections, deletion steps and updates are not events)."""

from __future__ import annotations

import base64
import json
from typing import Any

from tracking.models.canonical import CanonicalEvent
from tracking.storage.dynamo import from_item
from tracking.storage.events import event_from_item, is_event


def stored_event(data: bytes) -> CanonicalEvent | None:
    """The event a change stored, or None for any other change; ValueError, KeyError or TypeError
    for a record that cannot be read."""
    change = json.loads(data)
    image = change.get("dynamodb", {}).get("NewImage")
    if change.get("eventName") != "INSERT" or not image:
        return None
    plain = _plain(image)
    if not is_event(from_item(plain)):
        return None
    return event_from_item(plain)


def _plain(image: dict[str, Any]) -> dict[str, Any]:
    """An image from JSON (binary values as base64 text) in the form botocore hands back (bytes)."""
    return {name: _attribute(value) for name, value in image.items()}


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "L":
        return {"L": [_attribute(element) for element in inner]}
    if kind == "M":
        return {"M": {name: _attribute(element) for name, element in inner.items()}}
    return value
