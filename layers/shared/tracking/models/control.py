"""What the control table holds, as the domain sees it: dashboard keys and rate-limit grants."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DashboardKey:
    plugin_id: str
    key_hash: str
    created_at: int
    label: str = ""
    last4: str = ""  # the key's last 4 characters: enough to tell keys apart, never enough to use one
    last_used: int | None = None  # epoch ms, to within KEY_USE_RESOLUTION_MS

    @property
    def key_id(self) -> str:
        """The key's public name: a prefix of its hash (the hash is what is stored, not the key)."""
        return "key_" + self.key_hash[:20]


KEY_USE_RESOLUTION_MS = 15 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Grant:
    """Requests granted from an IP's shared budget, the window they belong to, and how the budget
    stands: how many containers hold leases of it, and what is left after this grant."""

    window_start: int  # epoch ms
    granted: int
    holders: int = 1
    left: int = 0
    contended: bool = False  # others kept changing the budget: nothing granted, ask again shortly
