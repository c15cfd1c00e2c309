"""Where a destination may be sent (SSRF): its URL is user input, so its host is resolved and every
address it resolves to is checked, when the destination is saved and again at every delivery, and the
delivery connects to the address that was checked (a name that answers a public address to the check
and a private one to the connection cannot get through).

Deployed, only ``https`` URLs whose addresses are all public are allowed: private, loopback,
link-local (the instance metadata service), shared, multicast, reserved and unspecified addresses are
refused, IPv4 and IPv6 alike (an IPv4-mapped IPv6 address is judged as the IPv4 address). The local
stack also allows ``http://127.0.0.1:<port>/...``: that literal address only, never a name."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

Resolver = Callable[[str, int], list[str]]
LOCAL_HOST = "127.0.0.1"


class AddressRefused(ValueError):
    """The URL may not be delivered to; the message says why (it names no address of ours)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (``address``), and what to name in Host and TLS (``host``)."""

    scheme: str
    host: str
    port: int
    address: str
    path: str  # with its query, as the request line takes it

    @property
    def origin(self) -> tuple[str, str, int, str]:
        """A connection may be reused for the same scheme, name, port and address."""
        return (self.scheme, self.host, self.port, self.address)


def resolve(host: str, port: int) -> list[str]:
    """Every address the name resolves to (TCP), in the resolver's order."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the name
        raise AddressRefused(f"the host {host!r} does not resolve") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def checked_url(url: str, *, allow_local: bool) -> SplitResult:
    """The URL's parts if its form may be delivered to (before any resolution)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused("the URL is not valid") from exc
    if parts.username is not None or parts.password is not None:
        raise AddressRefused("the URL may not hold a user or password")
    if not parts.hostname:
        raise AddressRefused("the URL has no host")
    local = allow_local and parts.scheme == "http" and parts.hostname == LOCAL_HOST and port is not None
    if parts.scheme != "https" and not local:
        allowed = "https (or http://127.0.0.1:<port> on the local stack)" if allow_local else "https"
        raise AddressRefused(f"the URL must be {allowed}")
    return parts


def target(url: str, *, allow_local: bool, resolver: Resolver = resolve) -> Target:
    """Resolve the URL's host and check every address; where to connect. Refused with a reason."""
    parts = checked_url(url, allow_local=allow_local)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if allow_local and parts.scheme == "http" and host == LOCAL_HOST:
        return Target("http", host, port, LOCAL_HOST, path)
    addresses = resolver(host, port)
    if not addresses:
        raise AddressRefused(f"the host {host!r} does not resolve")
    for address in addresses:
        if not is_public(address):
            raise AddressRefused(f"the host {host!r} resolves to an address that is not public")
    return Target(parts.scheme, host, port, addresses[0], path)
