"""API-key authentication: who may read what. The admin key reads everything and is the only one
that manages plugins; a dashboard key reads one plugin. Dashboard keys are stored as SHA-256 hashes
and nowhere else; the admin key comes from an :class:`AdminKey` (on AWS a Secrets Manager secret,
``storage/secrets.py``; locally ``TRACKING_ADMIN_KEY``). Dashboard keys start with ``dk_``; any
other key is compared with the admin key, so dashboard requests never read the secret.

A known key is looked up on every request (one small read), so a revoked key is refused on its next
call in every container; only unknown keys are remembered, for a few seconds, so a flood of wrong
keys costs few reads. A key's last use is recorded at most once per ``KEY_USE_RESOLUTION_MS`` per
container. Each key, the admin's included, has a daily quota of requests shared by every container
(a :class:`RateLimiter` over a day: a 429 once spent)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tracking.api_errors import Forbidden, RateLimited, Unauthorized
from tracking.keys import quota_name
from tracking.models.control import KEY_USE_RESOLUTION_MS, DashboardKey

if TYPE_CHECKING:
    from tracking.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

KEY_PREFIX = "dk_"
QUOTA_WINDOW_MS = 24 * 3600 * 1000


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_dashboard_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class AdminKey(Protocol):
    def matches(self, presented: str) -> bool: ...


class StaticAdminKey:
    """An admin key given at start (the local stack's ``TRACKING_ADMIN_KEY``); None: no admin."""

    def __init__(self, value: str | None) -> None:
        self._value = value.encode() if value else None

    def matches(self, presented: str) -> bool:
        return self._value is not None and hmac.compare_digest(presented.encode(), self._value)


class KeyStore(Protocol):
    def dashboard_key(self, key_hash: str) -> DashboardKey | None: ...
    def key_used(self, key: DashboardKey, at: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Caller:
    admin: bool
    plugin_id: str | None = None  # the one plugin a dashboard key reads

    def may_read(self, plugin_id: str) -> bool:
        return self.admin or self.plugin_id == plugin_id


class ApiKeyAuth:
    def __init__(
        self,
        admin_key: AdminKey,
        keys: KeyStore,
        *,
        quota: RateLimiter | None = None,
        unknown_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._admin_key = admin_key
        self._keys = keys
        self._quota = quota
        self._unknown_seconds = unknown_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._unknown: dict[str, float] = {}
        self._used: dict[str, int] = {}  # key hash -> the use this container last recorded (ms)
        self._lock = threading.Lock()

    def caller(self, presented: str | None) -> Caller:
        if not presented:
            raise Unauthorized("An x-api-key header is required")
        # Keys are printable ASCII; anything else (a lone surrogate, say) can match none of them.
        if not presented.isascii() or not presented.isprintable():
            raise Unauthorized("Unknown API key")
        if len(presented) > 200:
            raise Unauthorized("Unknown API key")
        if not presented.startswith(KEY_PREFIX):
            if not self._admin_key.matches(presented):
                raise Unauthorized("Unknown API key")
            self._spend("admin")
            return Caller(admin=True)
        found = self._lookup(key_hash(presented))
        if found is None:
            raise Unauthorized("Unknown API key")
        self._spend(found.key_id)
        return Caller(admin=False, plugin_id=found.plugin_id)

    def _spend(self, key_name: str) -> None:
        """One request of the key's daily quota (429 once it is spent)."""
        if self._quota is None:
            return
        try:
            self._quota.check(quota_name(key_name))
        except RateLimited as limited:
            raise RateLimited(limited.retry_after, "This key used its daily quota of requests") from None

    def reader(self, presented: str | None, plugin_id: str) -> Caller:
        caller = self.caller(presented)
        if not caller.may_read(plugin_id):
            raise Forbidden("This key reads another plugin")
        return caller

    def admin(self, presented: str | None) -> Caller:
        caller = self.caller(presented)
        if not caller.admin:
            raise Forbidden("Only the admin key manages plugins")
        return caller

    def _lookup(self, hashed: str) -> DashboardKey | None:
        now = self._clock()
        with self._lock:
            refused = self._unknown.get(hashed)
        if refused is not None and now - refused < self._unknown_seconds:
            return None
        found = self._keys.dashboard_key(hashed)
        with self._lock:
            if found is None:
                if len(self._unknown) > 10_000:
                    self._unknown.clear()
                self._unknown[hashed] = now
            else:
                self._unknown.pop(hashed, None)
        if found is not None:
            self._record_use(found)
        return found

    def _record_use(self, key: DashboardKey) -> None:
        at = int(self._wall_clock() * 1000) // KEY_USE_RESOLUTION_MS * KEY_USE_RESOLUTION_MS
        with self._lock:
            if self._used.get(key.key_hash, -1) >= at:
                return
            self._used[key.key_hash] = at
        try:
            self._keys.key_used(key, at)
        except Exception as exc:  # a key's last use is a hint: never refuse a read for it
            logger.warning("key use not recorded", extra={"error": repr(exc)})
