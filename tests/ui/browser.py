"""One headless Chromium per test process, alive only while browser tests run.

Sync Playwright keeps an event loop running on the main thread while it is started, which
code under test that runs a loop of its own must not meet: so the browser starts with the
first test that needs it and stops after the last of a run of such tests (see the hook in
tests/conftest.py). Test packages that borrow the `browser` fixture share this one.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

from tests.ui.server import CHROMIUM, CHROMIUM_ARGS

_running: tuple[Playwright, Browser] | None = None
# Signed-in contexts kept while the browser lives (signing in costs an argon2 check).
_contexts: dict[Any, BrowserContext] = {}


def shared_browser() -> Browser:
    global _running
    if _running is None:
        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
        except BaseException:
            playwright.stop()
            raise
        _running = (playwright, browser)
    return _running[1]


def kept_contexts() -> dict[Any, BrowserContext]:
    return _contexts


def stop_browser() -> None:
    global _running
    if _running is None:
        return
    playwright, browser = _running
    _running = None
    _contexts.clear()  # closed with the browser
    try:
        browser.close()
    finally:
        playwright.stop()
