"""Client payloads read strictly: anything Python's ``json`` would accept but JSON does not (``NaN``,
``Infinity``) and anything that would blow the stack is a 400, never a 500."""

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
