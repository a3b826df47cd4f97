"""The FTP(S) test server for the FTP client tests, and a folder of 100,000 names."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dropyard.files.spool import Spool
from tests.ftpserver import FtpServer, ftp_server  # noqa: F401

MANY = 100_000


@pytest.fixture(scope="session")
def many_names(ftp_server: FtpServer) -> int:  # noqa: F811
    """The `lister` user's home holds MANY empty files, created once per session."""
    home = ftp_server.home("lister")
    if not any(home.iterdir()):
        for number in range(MANY):
            os.close(os.open(home / f"f{number:06d}.csv", os.O_CREAT | os.O_WRONLY, 0o644))
    return MANY


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Callable[[], Spool]]:
    """Spools as the pull service makes them; discarded at the end of the test."""
    made: list[Spool] = []

    def make() -> Spool:
        made.append(Spool(tmp_path / "spool", limit=1024**3))
        return made[-1]

    yield make
    for one in made:
        one.discard()
