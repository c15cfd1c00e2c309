"""Building API Gateway REST proxy events the way the local stack and AWS do (the benchmarks' builder
too), and reading the contract's error shape."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from devstack.local.builders import api_event, canonical
from tracking.keys import user_suffix
from tracking.models.canonical import CanonicalEvent

__all__ = ["api_event", "assert_contract_error", "identify_call", "segment_call"]


SHOP_EVENT_AT = 1_764_016_799_000


def shop_event(**fields: Any) -> CanonicalEvent:
    """A stored Segment track of plugin ``shop`` (an ``Order Completed`` of ``u-1``), any field given."""
    base: dict[str, Any] = {
        "plugin_id": "shop",
        "user_id": "u-1",
        "key": "Order Completed",
        "dialect": "segment",
        "event_id": "m:abc",
        "event_time": SHOP_EVENT_AT,
        "received_at": SHOP_EVENT_AT,
    }
    return CanonicalEvent.model_validate({**base, **fields})


def segment_call(key: str, user: str, *, at: int, event_id: str, **extra: Any) -> CanonicalEvent:
    """A Segment-spec track call as ingest stores it (an anonymous visitor's: ``anonymous_id=user``)."""
    return canonical(
        key, extra.pop("value", None), user=user, at=at, event_id=event_id, dialect="segment", **extra
    )


def identify_call(
    user: str, anonymous: str | None, *, at: int, event_id: str, traits: dict[str, Any] | None = None
) -> CanonicalEvent:
    """A Segment identify as ingest stores it: ``anonymous`` (if any) asks to be linked into ``user``."""
    return segment_call(
        "identify",
        user,
        at=at,
        event_id=event_id,
        kind="identify",
        anonymous_id=anonymous,
        traits=traits or {},
    )


REJECTED_CALL = {"index", "messageId", "code", "message", "details"}


def assert_contract_error(body: dict[str, Any], codes: Iterable[str]) -> None:
    """``body`` is the contract's error shape, with one of ``codes`` (and Segment's top-level
    ``code`` and ``message`` when it has them). Its details name fields, or, for a batch none of
    whose calls is valid, list each call and why."""
    assert body["success"] is False, body
    assert body["error"]["code"] in set(codes), body
    assert isinstance(body["error"]["message"], str), body
    if "code" in body:
        assert (body["code"], body["message"]) == (body["error"]["code"], body["error"]["message"]), body
    for detail in body["error"].get("details", []):
        assert set(detail) in ({"field", "message"}, REJECTED_CALL), detail
        for inner in detail.get("details", []) if "index" in detail else []:
            assert set(inner) == {"field", "message"}, inner


def key_order(users: Iterable[str]) -> list[str]:
    """Users in the order rows and CSV list them: by key suffix (a hash of the user), then by user."""
    return sorted(users, key=lambda user: (user_suffix(user), user))
