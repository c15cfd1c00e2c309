"""The service's clock, in epoch milliseconds (what every stored time is in)."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
