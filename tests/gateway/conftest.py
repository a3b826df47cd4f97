"""One real `dropyard serve` per database per test worker, shared by the gateway tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import PG_ADMIN_URL, _postgres_available, _worker
from tests.support import RunningServer, drop_postgres, fresh_postgres, start_server

# Small limits so that the limit tests need little data.
SERVER_ENV = {
    "DROPYARD_MAX_FILE_BYTES": str(8 * 1024 * 1024),
    "DROPYARD_MAX_EMAIL_BYTES": str(1024 * 1024),
    "DROPYARD_BAN_AFTER_FAILURES": "5",
}


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp(f"serve-{request.param}")
    pg_name = f"dropyard_gw_{_worker()}"
    if request.param == "postgres":
        if not _postgres_available():
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not reachable; CI must run these tests")
            pytest.skip("PostgreSQL is not reachable")
        url = fresh_postgres(PG_ADMIN_URL, pg_name)
    else:
        url = f"sqlite:///{data_dir / 'dropyard.db'}"
    running = start_server(data_dir, url, extra_env=SERVER_ENV)
    yield running
    running.stop()
    if request.param == "postgres":
        drop_postgres(PG_ADMIN_URL, pg_name)
