"""A budget of requests per window shared by every Lambda container, cheap on DynamoDB writes: the
per-client-IP rate limit of ingest routes (a minute), and each API key's daily quota on the query
function (a day; ``query/auth.py``). Below, "an IP" is whatever the budget is kept for.

State lives in the control table (behind :class:`RateStore`; ``ControlStore.reserve`` on DynamoDB),
not in memory, so the limit holds however many containers serve an IP. To keep a chatty IP from
costing one write per request, a container takes a *lease* of several requests from the IP's budget
at once and spends it locally:
the first lease of a window is half of ``max_lease`` (a visitor's session of a few calls costs one
write), each following one doubles, up to ``max_lease``. Leases never exceed the budget, so the limit
is never exceeded, and it is exact for one container.

When several containers serve one IP, leases left unspent in idle containers would make it refuse
early. So the budget also counts its holders, and once there are several, a lease is at most a fair
share of what is left (``left / (FAIR_SHARE * holders)``, at least 1); a container granted more than
that gives the excess back at once. With 40 containers taking an IP's requests in turn, at least 110
of its first 120 are admitted (tests/integration/test_stores.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tracking.api_errors import RateLimited
from tracking.models.control import Grant

WINDOW_MS = 60_000
FAIR_SHARE = 16
_MAX_TRACKED_IPS = 10_000


class RateStore(Protocol):
    def reserve(
        self, client_ip: str, want: int, limit: int, window_ms: int, now_ms: int, *, joining: bool = True
    ) -> Grant: ...
    def release(self, client_ip: str, window_start: int, count: int) -> None: ...


@dataclass(slots=True)
class _Lease:
    window_start: int
    remaining: int
    next_size: int
    exhausted: bool = False


def fair_share(grant: Grant) -> int | None:
    """The most one holder should take of what was left, when several hold leases of the budget."""
    if grant.holders <= 1:
        return None
    return max(1, (grant.left + grant.granted) // (FAIR_SHARE * grant.holders))


class RateLimiter:
    def __init__(
        self,
        store: RateStore,
        limit: int,
        *,
        max_lease: int = 16,
        window_ms: int = WINDOW_MS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limit = limit
        self._max_lease = max(1, min(max_lease, limit or 1))
        self._first_lease = max(1, self._max_lease // 2)
        self._window_ms = window_ms
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    def check(self, client_ip: str) -> None:
        """Count one request from ``client_ip``; raise :class:`RateLimited` if it is over the limit."""
        if not self.enabled:
            return
        now = int(self._clock() * 1000)
        with self._lock:
            lease = self._leases.get(client_ip)
            joining = lease is None or now >= lease.window_start + self._window_ms
            if lease is not None and not joining:
                if lease.exhausted:
                    raise self._limited(lease.window_start, now)
                if lease.remaining > 0:
                    lease.remaining -= 1
                    return
                want = lease.next_size
            else:
                want = self._first_lease
        grant = self._store.reserve(client_ip, want, self._limit, self._window_ms, now, joining=joining)
        if grant.contended:
            raise RateLimited(
                retry_after=1, message="Too many requests at once from this client; retry in 1 s"
            )
        granted = grant.granted
        share = fair_share(grant)
        if share is not None and granted > share:
            self._store.release(client_ip, grant.window_start, granted - share)
            granted = share
        with self._lock:
            if len(self._leases) >= _MAX_TRACKED_IPS:
                self._forget_stale(now)
            self._leases[client_ip] = _Lease(
                window_start=grant.window_start,
                remaining=max(granted - 1, 0),
                next_size=min(want * 2, self._max_lease, share or self._max_lease),
                exhausted=granted == 0,
            )
        if granted == 0:
            raise self._limited(grant.window_start, now)

    def _limited(self, window_start: int, now: int) -> RateLimited:
        return RateLimited(retry_after=max(1, math.ceil((window_start + self._window_ms - now) / 1000)))

    def _forget_stale(self, now: int) -> None:
        stale = [ip for ip, lease in self._leases.items() if now >= lease.window_start + self._window_ms]
        for ip in stale:
            del self._leases[ip]
        if len(self._leases) >= _MAX_TRACKED_IPS:
            self._leases.clear()
