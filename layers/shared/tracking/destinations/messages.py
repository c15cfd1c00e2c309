"""What a destination is sent: each stored event as a Segment-spec message, the signed delete message
of a forgotten person, and the bytes and headers of a webhook's POST or a Segment API's batch."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tracking.json_text import dumps_compact
from tracking.models.canonical import CanonicalEvent

SEGMENT_BATCH_MAX = 100  # messages in one POST {url}/v1/batch
USER_AGENT = "tracking-destinations/1"


def iso_time(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def message_id(event: CanonicalEvent) -> str:
    """The message's id, the same on every send of the event: the client's ``messageId`` where it
    named one, else the id the service stored it under."""
    return event.message_id or event.event_id


def event_name(event: CanonicalEvent) -> str | None:
    """A track's event name (a widget's event type, a plugin's key, a Segment track's event)."""
    return event.key if event.kind == "track" else None


def segment_message(event: CanonicalEvent) -> dict[str, Any]:
    """The stored event as a Segment-spec message, plus ``plugin_id``. A widget's or a plugin's event
    is a ``track`` whose ``event`` is its type or key and whose ``properties`` are the widget's data
    (its items as ``items``) or ``{"value": ...}``."""
    message: dict[str, Any] = {"type": event.kind, "messageId": message_id(event)}
    if event.kind == "track":
        message["event"] = event.key
    elif event.kind in ("page", "screen") and event.name is not None:
        message["name"] = event.name
    if event.dialect == "widget":
        message["userId"] = None
        message["anonymousId"] = event.user_id  # the visitor's token
    else:
        message["userId"] = event.user_id if event.identified else None
        message["anonymousId"] = event.anonymous_id
    if event.kind == "group":
        message["groupId"] = event.group_id
    if event.kind == "alias":
        message["previousId"] = event.previous_id
    message["properties"] = _properties(event)
    message["traits"] = event.traits
    message["context"] = event.context
    message["timestamp"] = iso_time(event.event_time)
    message["receivedAt"] = iso_time(event.received_at)
    message["plugin_id"] = event.plugin_id
    return message


def _properties(event: CanonicalEvent) -> dict[str, Any]:
    if event.dialect == "plugin":
        return {"value": event.value} if event.value is not None else {}
    properties = dict(event.properties)
    if event.items and "items" not in properties:
        properties["items"] = [item.model_dump(exclude_none=True) for item in event.items]
    return properties


def delete_message(user_id: str, anonymous_ids: list[str], deletion_id: str) -> dict[str, Any]:
    """What a webhook receives when a person is forgotten, so the tools downstream can forget too."""
    return {
        "type": "delete",
        "userId": user_id,
        "anonymousIds": anonymous_ids,
        "messageId": f"delete-{deletion_id}",
    }


def json_text(value: Any) -> str:
    """Compact JSON with stored numbers as JSON numbers (a queue message's body, a sent body)."""
    return dumps_compact(_numbers(value))


def body_bytes(message: Any) -> bytes:
    """The exact bytes sent (and signed): compact JSON, UTF-8, stored numbers as JSON numbers."""
    return json_text(message).encode()


def _numbers(value: Any) -> Any:
    """Stored numbers (``Decimal``) as JSON numbers: an integer as itself, else the nearest float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _numbers(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers(inner) for inner in value]
    return value


def signature(secret: str, body: bytes) -> str:
    """``X-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the exact body with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_request(secret: str, message: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = body_bytes(message)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Signature": signature(secret, body),
        "Idempotency-Key": str(message["messageId"]),
    }
    return body, headers


def segment_request(write_key: str, messages: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """``POST {url}/v1/batch``: up to ``SEGMENT_BATCH_MAX`` messages, HTTP Basic with the write key as
    the user and no password (as Segment's libraries send it)."""
    body = body_bytes({"batch": messages})
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Authorization": f"Basic {token}",
        "Idempotency-Key": str(messages[0]["messageId"]) if len(messages) == 1 else _batch_key(messages),
    }
    return body, headers


def _batch_key(messages: list[dict[str, Any]]) -> str:
    joined = "\n".join(str(message["messageId"]) for message in messages)
    return "batch-" + hashlib.sha256(joined.encode()).hexdigest()[:32]
