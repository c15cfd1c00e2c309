"""JSON as this service writes it: compact, UTF-8 kept as is (DynamoDB bills UTF-8 bytes, not
escapes)."""

from __future__ import annotations

import json
from typing import Any


def dumps_compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
