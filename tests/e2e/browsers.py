"""Headless Chromium for the end-to-end tests: Debian's package driven by Playwright (no browser
download), with the flags a closed network needs (no background calls to Google's hosts)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(what: str, *, user_agent: str | None = None) -> Iterator[Any]:
    """A launched Chromium; the test is skipped, saying so, where Debian's package is missing.
    ``user_agent`` replaces headless Chromium's own (a bot's) for every request, those the browser
    sends for a page already gone (a keepalive fetch on pagehide) included."""
    if CHROMIUM is None:
        pytest.skip(f"Chromium not found: {what} needs Debian's `chromium` package")
    args = [*CHROMIUM_ARGS, *([f"--user-agent={user_agent}"] if user_agent else [])]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield launched
        finally:
            launched.close()
