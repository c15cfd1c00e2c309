"""The per-IP limiter's rules, on an in-memory store with DynamoDB's semantics."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tracking.api_errors import RateLimited
from tracking.models.control import Grant
from tracking.ratelimit import RateLimiter


@dataclass
class MemoryStore:
    """What ControlStore.reserve does, without DynamoDB; counts its writes."""

    windows: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    writes: int = 0

    def reserve(
        self, client_ip: str, want: int, limit: int, window_ms: int, now_ms: int, *, joining: bool = True
    ) -> Grant:
        self.writes += 1
        start, used, holders = self.windows.get(client_ip, (0, 0, 0))
        if now_ms - start >= window_ms:
            start, used, holders = now_ms, 0, 0
        granted = max(0, min(want, limit - used))
        holders += 1 if joining else 0
        self.windows[client_ip] = (start, used + granted, holders)
        return Grant(start, granted, holders, limit - used - granted)

    def release(self, client_ip: str, window_start: int, count: int) -> None:
        self.writes += 1
        start, used, holders = self.windows[client_ip]
        if start == window_start:
            self.windows[client_ip] = (start, used - count, holders)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_121st_call_within_a_minute_is_limited_with_retry_after() -> None:
    clock = Clock()
    limiter = RateLimiter(MemoryStore(), 120, clock=clock)
    for _ in range(120):
        limiter.check("203.0.113.1")
        clock.now += 0.2
    with pytest.raises(RateLimited) as exc:
        limiter.check("203.0.113.1")
    assert exc.value.status == 429
    assert exc.value.headers() == {"Retry-After": str(60 - 24)}


def test_the_window_ends_a_minute_after_it_started() -> None:
    clock = Clock()
    limiter = RateLimiter(MemoryStore(), 2, clock=clock)
    limiter.check("ip")
    limiter.check("ip")
    with pytest.raises(RateLimited):
        limiter.check("ip")
    clock.now += 60
    limiter.check("ip")


def test_ips_are_limited_separately() -> None:
    limiter = RateLimiter(MemoryStore(), 1, clock=Clock())
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(RateLimited):
        limiter.check("a")


def test_zero_disables_the_limiter() -> None:
    store = MemoryStore()
    limiter = RateLimiter(store, 0, clock=Clock())
    for _ in range(500):
        limiter.check("ip")
    assert store.writes == 0


def test_leases_keep_writes_far_below_one_per_request() -> None:
    store = MemoryStore()
    limiter = RateLimiter(store, 120, max_lease=16, clock=Clock())
    for _ in range(8):
        limiter.check("visitor")
    assert store.writes == 1  # a visitor's session of a few calls: one write
    for _ in range(120):
        limiter.check("busy")
    # 8 + 16 + 16 ... : 8 writes for 120 requests instead of 120.
    assert store.writes == 1 + 8


def test_containers_share_one_budget() -> None:
    store = MemoryStore()
    clock = Clock()
    first, second = RateLimiter(store, 10, clock=clock), RateLimiter(store, 10, clock=clock)
    allowed = 0
    for turn in range(30):
        try:
            (first if turn % 2 else second).check("ip")
            allowed += 1
        except RateLimited:
            pass
    assert allowed <= 10


def test_a_limited_ip_costs_no_further_writes_until_its_window_ends() -> None:
    store = MemoryStore()
    limiter = RateLimiter(store, 1, clock=Clock())
    limiter.check("ip")
    with pytest.raises(RateLimited):
        limiter.check("ip")
    writes = store.writes
    for _ in range(50):
        with pytest.raises(RateLimited):
            limiter.check("ip")
    assert store.writes == writes
