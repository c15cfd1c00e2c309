"""Strict JSON parsing for client payloads: anything Python's ``json`` would accept but JSON does not
(``NaN``, ``Infinity``) and anything that would blow the stack is a 400, never a 500."""

from __future__ import annotations

import json
from typing import Any

from tracking.errors import BadRequest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str | bytes, what: str = "body") -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest(f"Invalid {what}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Invalid {what}: malformed JSON ({exc})") from None


def parse_json_object(text: str | bytes, what: str = "body") -> dict[str, Any]:
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid {what}: expected a JSON object")
    return value


def dumps_compact(value: Any) -> str:
    """Compact JSON as stored (non-ASCII kept as is: DynamoDB bills UTF-8 bytes, not escapes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def nesting_depth(value: Any, limit: int) -> int:
    """Depth of a parsed JSON value, stopping early once ``limit`` is passed."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return deepest
