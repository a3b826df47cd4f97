"""A disk that fills up in the middle of an upload: the client gets a clear error, nothing
half-written stays, and the next upload that fits works."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dropyard.files.models import File
from tests.gateway.sftp_client import sftp_batch
from tests.support import RunningServer, drop_box, start_server


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs for the full-disk test: {done.stderr!r}")
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_mid_upload_is_refused_and_leaves_nothing(
    small_disk: Path, tmp_path: Path
) -> None:
    data_dir = small_disk / "data"
    server: RunningServer = start_server(
        data_dir,
        f"sqlite:///{tmp_path / 'dropyard.db'}",
        roles="sftp",
        extra_env={"DROPYARD_MAX_FILE_BYTES": str(64 * 1024 * 1024)},
    )
    try:
        box = drop_box(server.app)
        (tmp_path / "big.csv").write_bytes(b"x" * (5 * 1024 * 1024))
        (tmp_path / "small.csv").write_bytes(b"a,b\n1,2\n")
        full = sftp_batch(
            server.ports["sftp"],
            box.login,
            box.password,
            f"put big.csv /{box.folder}/big.csv\n",
            cwd=tmp_path,
        )
        assert full.code != 0  # OpenSSH's sftp shows SFTPv3 errors only as "Failure"
        assert "big.csv" in full.err
        spool = server.settings.spool_dir
        assert not spool.exists() or list(spool.iterdir()) == []
        fits = sftp_batch(
            server.ports["sftp"],
            box.login,
            box.password,
            f"put small.csv /{box.folder}/small.csv\n",
            cwd=tmp_path,
        )
        assert fits.code == 0, fits.err
        with server.app.sessions() as session:
            names = list(
                session.scalars(select(File.name).where(File.connection_id == box.connection_id))
            )
        assert names == ["small.csv"]
    finally:
        server.stop()
