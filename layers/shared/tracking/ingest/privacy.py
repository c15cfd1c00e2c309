"""What is kept of a caller's address (shared/API.md, "Bots and privacy"), applied before anything is
stored: by default an IPv4 address keeps its first three octets (/24) and an IPv6 address its first
48 bits, the rest zeroed; a plugin's ``privacy.ip`` may keep it whole (``full``) or drop it
(``none``). The stored event's ``context.ip`` (the caller's, or one a Segment call names itself) and
the text kept of a refused call are both treated. Whether a call asks not to be tracked (``DNT: 1``,
``Sec-GPC: 1``) is read here too."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

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
