"""Bots flagged and devices parsed from real user agents: crawlers, headless browsers and uptime
probes are bots; the Segment-spec libraries' own agents, curl and HTTP clients are not; desktop,
mobile and tablet browsers are told apart. Each distinct agent is classified once per container."""

# ruff: noqa: E501 - real user agents are long
from __future__ import annotations

import pytest

from tracking.ingest.agents import AGENTS_CACHED, agent_of

# (user agent, bot, device, browser, os); None: not checked
AGENTS: list[tuple[str, bool, str, str | None, str | None]] = [
    # Crawlers and spiders
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        True,
        "bot",
        "Googlebot",
        None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        True,
        "bot",
        None,
        None,
    ),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True, "bot", None, None),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", True, "bot", None, None),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", True, "bot", None, None),
    (
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        True,
        "bot",
        None,
        None,
    ),
    ("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", True, "bot", None, None),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", True, "bot", None, None),
    ("Twitterbot/1.0", True, "bot", None, None),
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True, "bot", None, None),
    (
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        True,
        "bot",
        None,
        None,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 "
        "Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        True,
        "bot",
        None,
        None,
    ),
    ("Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", True, "bot", None, None),
    ("Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)", True, "bot", None, None),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        True,
        "bot",
        None,
        None,
    ),
    ("CCBot/2.0 (https://commoncrawl.org/faq/)", True, "bot", None, None),
    # Headless browsers
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 "
        "Safari/537.36",
        True,
        "bot",
        None,
        None,
    ),
    (
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        True,
        "bot",
        None,
        None,
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36 Chrome-Lighthouse",
        True,
        "bot",
        None,
        None,
    ),
    # Uptime and monitoring probes
    ("Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", True, "bot", None, None),
    ("Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)", True, "bot", None, None),
    ("Mozilla/5.0 (compatible; StatusCake)", True, "bot", None, None),
    ("Site24x7", True, "bot", None, None),
    (
        "Better Uptime Bot Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/83.0.4103.61 Safari/537.36",
        True,
        "bot",
        None,
        None,
    ),
    # The Segment-spec libraries' own agents, curl and HTTP clients: never bots
    ("analytics-python/2.3.2", False, "other", None, None),
    ("analytics-node-next/latest", False, "other", None, None),
    ("analytics-ruby/2.4.0", False, "other", None, None),
    ("cdp-analytics-python/1.1.0", False, "other", None, None),
    ("RudderLabs", False, "other", None, None),
    ("rudder-sdk-node/2.0.7", False, "other", None, None),
    ("curl/8.4.0", False, "other", None, None),
    ("python-requests/2.31.0", False, "other", None, None),
    ("axios/1.6.2", False, "other", None, None),
    ("Go-http-client/2.0", False, "other", None, None),
    ("okhttp/4.12.0", False, "other", None, None),
    # Desktop browsers
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36",
        False,
        "desktop",
        "Chrome",
        "Windows",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
        "Safari/605.1.15",
        False,
        "desktop",
        "Safari",
        "Mac OS X",
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        False,
        "desktop",
        "Firefox",
        "Ubuntu",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36 Edg/120.0.0.0",
        False,
        "desktop",
        "Edge",
        "Windows",
    ),
    # Phones and tablets
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Mobile/15E148 Safari/604.1",
        False,
        "mobile",
        "Mobile Safari",
        "iOS",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.43 "
        "Mobile Safari/537.36",
        False,
        "mobile",
        "Chrome Mobile",
        "Android",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
        False,
        "mobile",
        "Samsung Internet",
        "Android",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 "
        "Mobile/15E148 Safari/604.1",
        False,
        "tablet",
        "Mobile Safari",
        "iOS",
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
        "Safari/537.36",
        False,
        "tablet",
        "Chrome",
        "Android",
    ),
]


@pytest.mark.parametrize(("agent", "bot", "device", "browser", "os"), AGENTS)
def test_a_real_agent_is_flagged_and_its_device_parsed(
    agent: str, bot: bool, device: str, browser: str | None, os: str | None
) -> None:
    found = agent_of(agent)
    assert (found.bot, found.device) == (bot, device)
    if browser is not None:
        assert found.browser == browser
    if os is not None:
        assert found.os == os


def test_the_table_covers_what_the_issue_asks() -> None:
    assert len(AGENTS) >= 40
    assert sum(1 for _, bot, *_ in AGENTS if bot) >= 15
    assert sum(1 for _, _, device, *_ in AGENTS if device in ("mobile", "tablet")) >= 5


def test_each_distinct_agent_is_classified_once_per_container() -> None:
    agent_of.cache_clear()
    for _ in range(3):
        agent_of("curl/8.4.0")
    assert agent_of.cache_info().hits == 2
    assert agent_of.cache_info().maxsize == AGENTS_CACHED


def test_stored_events_keep_the_flag_and_device_and_the_lake_shows_them() -> None:
    from dataclasses import replace  # noqa: PLC0415

    from tests.unit.test_ingest_service import INFO, Ingest, body  # noqa: PLC0415
    from tracking.lake.schema import lake_row  # noqa: PLC0415

    ingest = Ingest()
    crawler = replace(INFO, user_agent=AGENTS[0][0])
    ingest.service.plugin("demo-plugin", body("plugin-track"), crawler)
    # A server library sends its user's call; the user's own browser is in context.userAgent.
    payload = body("segment-track")
    payload["context"] = {"userAgent": AGENTS[-5][0]}  # an iPhone
    ingest.service.segment(
        "track", payload, "Basic d2tfbGl2ZV8xMjM6", replace(INFO, user_agent="analytics-python/2.3.2")
    )
    by_dialect = {event.dialect: event for event in ingest.events.events()}
    assert by_dialect["plugin"].context["bot"] is True
    assert by_dialect["plugin"].context["agent"]["device"] == "bot"
    assert by_dialect["segment"].context["bot"] is False
    row = lake_row(by_dialect["segment"])
    assert (row["bot"], row["browser"], row["os"], row["device"]) == (False, "Mobile Safari", "iOS", "mobile")
    assert lake_row(by_dialect["plugin"])["bot"] is True


def _visits(ingest: object, agent: str, tokens: list[str]) -> None:
    from dataclasses import replace  # noqa: PLC0415

    from tests.unit.test_ingest_service import INFO  # noqa: PLC0415

    for token in tokens:
        call = {"event": "visitor", "token": token, "ab_test": True, "data": {"chatbot_id": "demo-bot"}}
        ingest.service.widget(call, replace(INFO, user_agent=agent))  # type: ignore[attr-defined]


def test_the_summary_is_unchanged_by_100_bot_visits_which_it_counts_apart() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from tests.unit.test_ingest_service import NOW, Ingest  # noqa: PLC0415
    from tracking.query import rollups  # noqa: PLC0415

    day = datetime.fromtimestamp(NOW / 1000, UTC).date()
    browser = AGENTS[-9][0]  # Chrome on Windows
    humans = [f"human_{n:04d}_{n % 2}" for n in range(4)]

    def summary(bots: int, include: bool = False) -> dict[str, object]:
        ingest = Ingest()
        if include:  # the chatbot's config says bots count
            from tracking.models.config import PluginConfig  # noqa: PLC0415

            ingest.control.publish("demo-bot", PluginConfig.model_validate({"bots": "include"}))
        _visits(ingest, browser, humans)
        _visits(ingest, AGENTS[0][0], [f"crawl_{n:04d}_{n % 2}" for n in range(bots)])  # Googlebot
        ingest.counted()
        found = rollups.summary(ingest.aggregates, "demo-bot", None, first=None, last=None, today=day)
        assert found is not None
        return found

    clean, crawled = summary(0), summary(100)
    assert crawled["bots"] == 100
    assert clean["bots"] == 0
    for part in ("counts", "funnel", "ab_test"):
        assert crawled[part] == clean[part], part
    assert crawled["counts"] == {"visitor": 4}
    included = summary(100, include=True)
    assert (included["counts"], included["bots"]) == ({"visitor": 104}, 0)
