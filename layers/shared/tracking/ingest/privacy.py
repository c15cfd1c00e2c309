"""What is kept of a caller's address (shared/API.md, "Bots and privacy"), applied before anything is
stored: by default an IPv4 address keeps its first three octets (/24) and an IPv6 address its first
48 bits, the rest zeroed; a plugin's ``privacy.ip`` may keep it whole (``full``) or drop it
(``none``). The stored event's ``context.ip`` (the caller's, or one a Segment call names itself) and
the text kept of a refused call are both treated. Whether a call asks not to be tracked (``DNT: 1``,
``Sec-GPC: 1``) is read here too.

The per-IP rate limit must tell callers apart, so it cannot keep a truncated address; it keeps a
pseudonym instead (:class:`PseudonymousBudgets`): a keyed hash of the whole address under a secret
salt of the day, as Plausible counts visitors. The salt is random, shared by every container through
the control table and expires a day after its day: from then on no stored window can be linked to an
address, even by someone who reads the table."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time
from typing import Any, Literal, Protocol

from tracking.models.control import Grant
from tracking.ratelimit import RateStore

IpMode = Literal["truncate", "full", "none"]
# Address-like runs in free text: dotted quads, and runs of hex groups with colons (checked by parsing).
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]{0,39}(?![0-9A-Fa-f:])")
DROPPED = "-"  # what an address becomes in text when none is kept


def kept_address(raw: str | None, mode: IpMode) -> str | None:
    """The address as the plugin keeps it; None when nothing is kept (or it is no address at all)."""
    if raw is None or mode == "none":
        return None
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None  # not an address: nothing to keep (it could be anything the client wrote)
    if mode == "full":
        return str(address)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def private_context(context: dict[str, Any], mode: IpMode) -> dict[str, Any]:
    """An event's context with ``ip`` as the plugin keeps it (removed when nothing is); the same
    dict when there is nothing to change."""
    if mode == "full" or "ip" not in context:
        return context
    kept = dict(context)
    address = kept_address(_text(kept.pop("ip")), mode)
    if address is not None:
        kept["ip"] = address
    return kept


def scrubbed(text: str, mode: IpMode) -> str:
    """Free text (a refused call as the client sent it) with every address in it as kept."""
    if mode == "full" or not text:
        return text

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        try:
            ipaddress.ip_address(found)
        except ValueError:
            return found  # a time, a version, an emoticon: not an address
        return kept_address(found, mode) or DROPPED

    return _IPV6.sub(replace, _IPV4.sub(replace, text))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


DAY_S = 86_400


class DailySalts(Protocol):
    def daily_salt(self, day: str, expires_at: int) -> bytes: ...


class PseudonymousBudgets:
    """A :class:`~tracking.ratelimit.RateStore` whose windows are kept under the day's pseudonym of
    an address, never the address (the limiter in memory still holds it, for a minute).

    A window is named by the day its request arrived in (``release`` by the day its window opened),
    so at midnight UTC a caller starts a new window under a new name: one window in a day is reset
    early, which the limit allows (it is an abuse guard, not a quota)."""

    def __init__(self, store: RateStore, salts: DailySalts) -> None:
        self._store = store
        self._salts = salts
        self._kept: dict[int, bytes] = {}  # the salts of the latest two days read, by day number

    def _pseudonym(self, client_ip: str, at_ms: int) -> str:
        day = at_ms // 1000 // DAY_S
        salt = self._kept.get(day)
        if salt is None:
            name = time.strftime("%Y-%m-%d", time.gmtime(day * DAY_S))
            salt = self._salts.daily_salt(name, (day + 2) * DAY_S)
            self._kept = {d: s for d, s in self._kept.items() if d > day - 2} | {day: salt}
        return hashlib.blake2b(client_ip.encode(), key=salt, digest_size=16).hexdigest()

    def reserve(
        self, client_ip: str, want: int, limit: int, window_ms: int, now_ms: int, *, joining: bool = True
    ) -> Grant:
        name = self._pseudonym(client_ip, now_ms)
        return self._store.reserve(name, want, limit, window_ms, now_ms, joining=joining)

    def release(self, client_ip: str, window_start: int, count: int) -> None:
        self._store.release(self._pseudonym(client_ip, window_start), window_start, count)
