"""A real `dropyard serve` with its embedded worker, per database, for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _worker
from tests.support import RunningServer, served


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def pipeline_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    # The scaled-out pairing runs here too: PostgreSQL with the job queue on Redis.
    env = (
        {
            "DROPYARD_REDIS_URL": "redis://127.0.0.1:6379/0",
            "DROPYARD_QUEUE_NAME": f"dropyard-test-{_worker()}",
        }
        if request.param == "postgres"
        else {}
    )
    with served(
        request.param, data_dir, name="dropyard_pl", roles="web,sftp,worker", extra_env=env
    ) as running:
        yield running
