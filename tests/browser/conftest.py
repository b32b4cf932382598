"""Headless Chromium for browser tests: Debian's ``chromium`` (``make test`` installs it),
driven by Playwright with ``executable_path`` — Playwright's own browser download is not
used. Each test saves screenshots to ``artifacts/screenshots/`` for a reviewer."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module: Playwright's sync API keeps an event loop running on this
    thread while it is open, which the asyncio tests after it cannot share."""
    binary = shutil.which("chromium")
    if binary is None:
        raise RuntimeError("chromium is not installed: run `make test` (it installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context()
    opened = context.new_page()
    try:
        yield opened
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
        opened.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        context.close()
