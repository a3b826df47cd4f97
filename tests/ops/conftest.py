"""Operations tests: one real `dropyard serve` per database per test worker, with JSON
logs, a metrics token and a separate metrics port, running the web, SFTP and worker roles."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support import RunningServer, served

METRICS_TOKEN = "scrape-me-7f3a"
SERVER_ENV = {
    "DROPYARD_LOG_FORMAT": "json",
    "DROPYARD_METRICS_TOKEN": METRICS_TOKEN,
    "DROPYARD_METRICS_PORT": "0",
    "DROPYARD_SWEEP_SECONDS": "1",
}


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp(f"ops-{request.param}")
    with served(
        request.param, data_dir, name="dropyard_ops", roles="web,sftp,worker", extra_env=SERVER_ENV
    ) as running:
        yield running


def closed_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
