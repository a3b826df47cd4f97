"""One real OpenSSH sshd per test worker, and a folder of its own for each test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropyard.files.spool import Spool
from dropyard.remote.base import Limits
from tests.remote.sshd import Sshd, running_sshd


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


@pytest.fixture
def box(sshd: Sshd, request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(the folder as the client sees it, the same folder on this machine)"""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:80]
    return sshd.folder(name)


@pytest.fixture
def limits() -> Limits:
    return Limits(connect_timeout=10.0, idle_timeout=10.0, max_file_bytes=64 * 1024**2)


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path / "spool", limit=1024**3)
