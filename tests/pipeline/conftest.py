"""A real `dropyard serve` with its embedded worker, per database, for end-to-end tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import PG_ADMIN_URL, _postgres_available, _worker
from tests.support import RunningServer, drop_postgres, fresh_postgres, start_server


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def pipeline_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    pg_name = f"dropyard_pl_{_worker()}"
    if request.param == "postgres":
        if not _postgres_available():
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not reachable; CI must run these tests")
            pytest.skip("PostgreSQL is not reachable")
        url = fresh_postgres(PG_ADMIN_URL, pg_name)
    else:
        url = f"sqlite:///{data_dir / 'dropyard.db'}"
    running = start_server(data_dir, url, roles="web,sftp,worker")
    yield running
    running.stop()
    if request.param == "postgres":
        drop_postgres(PG_ADMIN_URL, pg_name)
