"""Shared fixtures: a Dropyard built on a fresh database, on SQLite and on PostgreSQL.

Tests that take `app` run once per database. PostgreSQL tests are skipped locally when no
server answers, and fail under CI=true: a green CI must have run them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from dropyard.app import Dropyard, build
from dropyard.db import migrate
from dropyard.db.engine import make_engine
from dropyard.db.models import Base
from dropyard.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "DROPYARD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DATABASES = ("sqlite", "postgres")


def _worker() -> str:
    """Unique per test run and worker, so parallel runs never share a database."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"p{os.getpid()}")[:8]
    return f"{run}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def _postgres_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("select 1"))
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432; CI must run these tests")
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    name = f"dropyard_test_{_worker()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "dropyard.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        _truncate_all(url)
        return url
    target = tmp_path / "data" / "dropyard.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_host="127.0.0.1",
        allow_networks=["127.0.0.0/8"],
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Dropyard]:
    dropyard = build(settings)
    yield dropyard
    dropyard.close()


@pytest.hookimpl(trylast=True)  # after the fixtures' own teardown (pages, contexts)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the browser after the last of a run of browser tests (tests/ui/browser.py):
    a started sync Playwright keeps an event loop running that other tests must not meet."""
    if nextitem is not None and "browser" in getattr(nextitem, "fixturenames", ()):
        return
    try:
        from tests.ui.browser import stop_browser
    except ImportError:  # no playwright installed: no browser was started
        return
    stop_browser()
