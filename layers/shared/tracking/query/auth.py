"""API-key authentication: who may read what. The admin key reads everything and is the only one
that manages plugins; a dashboard key reads one plugin. Dashboard keys are stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tracking.errors import Forbidden, Unauthorized
from tracking.models.control import DashboardKey

KEY_PREFIX = "dk_"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_dashboard_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore(Protocol):
    def dashboard_key(self, key_hash: str) -> DashboardKey | None: ...


@dataclass(frozen=True, slots=True)
class Caller:
    admin: bool
    plugin_id: str | None = None  # the one plugin a dashboard key reads

    def may_read(self, plugin_id: str) -> bool:
        return self.admin or self.plugin_id == plugin_id


class ApiKeyAuth:
    def __init__(
        self,
        admin_key: str | None,
        keys: KeyStore,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin_key = admin_key
        self._keys = keys
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, DashboardKey | None]] = {}
        self._lock = threading.Lock()

    def caller(self, presented: str | None) -> Caller:
        if not presented:
            raise Unauthorized("An x-api-key header is required")
        # Keys are printable ASCII; anything else (a lone surrogate, say) can match none of them.
        if not presented.isascii() or not presented.isprintable():
            raise Unauthorized("Unknown API key")
        if self._admin_key and hmac.compare_digest(presented.encode(), self._admin_key.encode()):
            return Caller(admin=True)
        if not presented.startswith(KEY_PREFIX) or len(presented) > 200:
            raise Unauthorized("Unknown API key")
        found = self._lookup(key_hash(presented))
        if found is None:
            raise Unauthorized("Unknown API key")
        return Caller(admin=False, plugin_id=found.plugin_id)

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
            hit = self._cache.get(hashed)
        # Known keys are kept longer than unknown ones, so a new key works within seconds.
        if hit is not None and now - hit[0] < (
            self._cache_seconds if hit[1] else min(self._cache_seconds, 5.0)
        ):
            return hit[1]
        found = self._keys.dashboard_key(hashed)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[hashed] = (now, found)
        return found
