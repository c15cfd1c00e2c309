"""Who sent a call, from its user agent (shared/API.md, "Bots and privacy"): a bot (a crawler, spider,
monitoring probe or headless browser, by the patterns of ``crawlerdetect``, a port of JayBizzle's
Crawler-Detect list), and the browser, OS and device kind (``ua-parser`` with the uap-core rules of
``ua-parser-builtins``). Both are pinned in the layer's requirements.

Server libraries' own agents (Segment's, Customer.io's and RudderStack's libraries, curl, HTTP
clients) are never bots: a server sends on behalf of its users, and Crawler-Detect lists several of
them. Each distinct agent is classified once per container (an LRU cache), and the two libraries are
imported on the first call that has an agent: a container that never sees one never loads them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal

Device = Literal["desktop", "mobile", "tablet", "bot", "other"]
AGENTS_CACHED = 4096
AGENT_MAX = 1024  # the longest agent classified (a longer one is cut: the patterns look at its start)

# The agents of server-side senders: the Segment-spec libraries (analytics-python, -node, -ruby, -go,
# -java, -php, Customer.io's cdp-analytics-*, RudderStack's rudder-sdk-* and RudderLabs), command-line
# tools and HTTP client libraries.
SERVER_LIBRARY = re.compile(
    r"^(?:analytics-[a-z]+|analytics\.js|cdp-analytics|customerio|cio-|rudder|curl/|wget/|python-requests/"
    r"|python-urllib|python-httpx|aiohttp/|axios/|node-fetch|undici|got\b|okhttp/|go-http-client/|java/"
    r"|apache-httpclient/|guzzlehttp/|ruby|faraday|dart:io|postmanruntime/)",
    re.IGNORECASE,
)
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "ChromeOS", "Fedora", "FreeBSD", "Debian"}
)
_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS"})
_TABLET = re.compile(r"iPad|Tablet|Kindle|Silk/|PlayBook|Nexus (?:7|9|10)\b|SM-[TXP]\d", re.IGNORECASE)
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Android.*Mobile|Windows Phone", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Agent:
    bot: bool
    browser: str | None
    os: str | None
    device: Device

    def context(self) -> dict[str, Any]:
        """What the stored event keeps (``context.bot`` and ``context.agent``)."""
        return {"bot": self.bot, "agent": {"browser": self.browser, "os": self.os, "device": self.device}}


@cache
def _crawlers() -> Any:
    from crawlerdetect import CrawlerDetect  # noqa: PLC0415 - only a container that sees agents

    return CrawlerDetect()


@cache
def _parse() -> Any:
    """uap-core's browser and OS rules, each compiled the first time it is tried: a first agent
    compiles the rules before its match (the device rules never: the kind is judged below), about
    80 ms in all where the library's default parser compiled all 1,270 rules in 180 ms."""
    # Only a container that sees agents imports them.
    from ua_parser import Domain, Parser, load_lazy_builtins  # noqa: PLC0415
    from ua_parser.basic import Resolver  # noqa: PLC0415

    parser = Parser(Resolver(load_lazy_builtins()))
    return lambda agent: parser(agent, Domain.USER_AGENT | Domain.OS)


@lru_cache(maxsize=AGENTS_CACHED)
def agent_of(user_agent: str) -> Agent:
    """The agent's classification (computed once per distinct agent and container)."""
    agent = user_agent[:AGENT_MAX]
    server = SERVER_LIBRARY.match(agent.strip()) is not None
    bot = not server and bool(_crawlers().isCrawler(agent))
    parsed = _parse()(agent)
    browser = _family(parsed.user_agent)
    os = _family(parsed.os)
    if bot:
        device: Device = "bot"
    elif server:
        device = "other"
    elif _TABLET.search(agent):
        device = "tablet"
    elif _MOBILE.search(agent) or os in _MOBILE_OS:
        device = "tablet" if os == "Android" and "Mobile" not in agent else "mobile"
    elif os in _DESKTOP_OS:
        device = "desktop"
    else:
        device = "other"
    return Agent(bot, browser, os, device)


def _family(part: Any) -> str | None:
    family = getattr(part, "family", None) if part is not None else None
    return family if isinstance(family, str) and family and family != "Other" else None


def classified_context(context: dict[str, Any]) -> dict[str, Any]:
    """An event's context with its agent's classification (``bot``, and ``agent``: browser, OS,
    device), from a Segment call's ``context.userAgent`` (its user's browser) or else the request's
    ``User-Agent``; the same dict for an event without an agent."""
    raw = context.get("userAgent")
    if not isinstance(raw, str) or not raw.strip():
        raw = context.get("user_agent")
    if not isinstance(raw, str) or not raw.strip():
        return context
    return {**context, **agent_of(raw).context()}
