"""What the control table holds, as the domain sees it: dashboard keys and rate-limit grants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DashboardKey:
    plugin_id: str
    key_hash: str
    created_at: int
    label: str = ""
    gateway_key_id: str | None = None  # the API Gateway API key of the same value, when deployed


@dataclass(frozen=True, slots=True)
class Grant:
    """Requests granted from an IP's shared budget, the window they belong to, and how the budget
    stands: how many containers hold leases of it, and what is left after this grant."""

    window_start: int  # epoch ms
    granted: int
    holders: int = 1
    left: int = 0
