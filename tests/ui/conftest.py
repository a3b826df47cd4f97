"""The console in a real browser: one server per database per test session (see
server.py) and one headless Chromium (tests/ui/browser.py).

Every UI test runs on SQLite; those that take `any_console` run on PostgreSQL too. All UI
tests share one xdist group, so one worker starts one browser. A signed-in browser
context per user is kept while the browser lives (signing in costs an argon2 check), and tests
that are about sessions or cookies take a fresh context from `new_page`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL, _postgres_available, _worker
from tests.support import drop_postgres, fresh_postgres
from tests.ui.server import (
    CHROMIUM,
    SCREENSHOTS,
    Console,
    User,
    running_console,
)

try:
    from playwright.sync_api import Browser, BrowserContext, Page

    from tests.ui.browser import kept_contexts, shared_browser
except ImportError:  # the browser tests need playwright; CI has it
    if os.environ.get("CI"):
        raise
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def sqlite_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    data_dir = tmp_path_factory.mktemp("ui-sqlite")
    yield from running_console(data_dir, f"sqlite:///{data_dir / 'dropyard.db'}", "sqlite")


@pytest.fixture(scope="session")
def postgres_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable; CI must run these tests")
        pytest.skip("PostgreSQL is not reachable")
    name = f"dropyard_ui_{_worker()}"
    url = fresh_postgres(PG_ADMIN_URL, name)
    try:
        yield from running_console(tmp_path_factory.mktemp("ui-postgres"), url, "postgres")
    finally:
        drop_postgres(PG_ADMIN_URL, name)


@pytest.fixture
def console(sqlite_console: Console) -> Console:
    return sqlite_console


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_console(request: pytest.FixtureRequest) -> Console:
    """The console on each database, for the tests that run on PostgreSQL too."""
    found: Console = request.getfixturevalue(f"{request.param}_console")
    return found


@pytest.fixture
def browser() -> Browser:
    """The process's browser (tests/ui/browser.py), started on first use."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must run the browser tests")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return shared_browser()


def _context(
    browser: Browser, *, javascript: bool = True, width: int = 1280, height: int = 900
) -> BrowserContext:
    context = browser.new_context(
        viewport={"width": width, "height": height}, java_script_enabled=javascript
    )
    context.set_default_timeout(10_000)
    return context


NewPage = Callable[..., Page]


@pytest.fixture
def new_page(browser: Browser) -> Iterator[NewPage]:
    """Pages in fresh browser contexts (no cookies), closed after the test."""
    contexts: list[BrowserContext] = []

    def make(*, javascript: bool = True, width: int = 1280, height: int = 900) -> Page:
        context = _context(browser, javascript=javascript, width=width, height=height)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def _signed_in_contexts(browser: Browser) -> dict[tuple[str, str, bool], BrowserContext]:
    return kept_contexts()


SignedIn = Callable[..., Page]


@pytest.fixture
def signed_in(
    browser: Browser, _signed_in_contexts: dict[tuple[str, str, bool], BrowserContext]
) -> Iterator[SignedIn]:
    """A new page of `user`'s signed-in browser context (kept for the session)."""
    from tests.ui.pages import sign_in

    pages: list[Page] = []

    def make(console: Console, user: User, *, javascript: bool = True) -> Page:
        key = (console.base_url, user.email, javascript)
        context = _signed_in_contexts.get(key)
        if context is None:
            context = _context(browser, javascript=javascript)
            first = context.new_page()
            sign_in(first, console, user)
            first.close()
            _signed_in_contexts[key] = context
        page = context.new_page()
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.close()
