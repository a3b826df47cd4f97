"""A real `dropyard serve` with its embedded worker, per database, for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import RunningServer, served


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def pipeline_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    with served(request.param, data_dir, name="dropyard_pl", roles="web,sftp,worker") as running:
        yield running
