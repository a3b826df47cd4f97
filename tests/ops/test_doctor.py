"""`dropyard doctor` as a user runs it: a subprocess on a data dir, good or broken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dropyard.app import build
from dropyard.settings import Settings
from tests.ops.conftest import closed_port


def _doctor(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "dropyard", "--data-dir", str(data_dir), "doctor", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def _free_ports() -> dict[str, str]:
    return {f"DROPYARD_{role}_PORT": str(closed_port()) for role in ("WEB", "SFTP", "FTP", "SMTP")}


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A data dir as `dropyard migrate` leaves it (SQLite)."""
    data_dir = tmp_path / "var"
    app = build(Settings(data_dir=data_dir))
    app.migrate()
    app.close()
    return data_dir


def test_a_good_installation_passes(installed: Path) -> None:
    code, out = _doctor(installed, env=_free_ports())
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    checks = lines[:-1]
    assert lines[-1] == "all checks passed"
    assert all(line.startswith("ok") for line in checks), out
    names = " ".join(checks)
    for name in ("settings", "data dir", "master key", "database", "storage", "sftp port"):
        assert name in names


def test_a_broken_installation_fails_and_says_how_to_fix_it(installed: Path) -> None:
    installed.chmod(0o755)
    database = f"postgresql+psycopg://dropyard:hunter2@127.0.0.1:{closed_port()}/dropyard"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = {
            **_free_ports(),
            "DROPYARD_DATABASE_URL": database,
            "DROPYARD_SFTP_PORT": str(busy.getsockname()[1]),
        }
        code, out = _doctor(installed, "--roles", "sftp,worker", env=env)
    assert code == 1, out
    failed = {line.split()[1]: line for line in out.splitlines() if line.startswith("FAIL")}
    assert f"chmod 700 {installed}" in failed["data"]
    assert "DROPYARD_DATABASE_URL" in failed["database"]
    assert "DROPYARD_SFTP_PORT" in failed["sftp"]
    assert "hunter2" not in out


def test_a_data_dir_that_cannot_be_one_fails_in_json(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "var"
    not_a_dir.write_text("a file, not a directory")
    code, out = _doctor(not_a_dir, "--json", "--roles", "worker")
    assert code == 1
    document = json.loads(out)
    assert document["ok"] is False
    by_name = {c["check"]: c for c in document["checks"]}
    assert by_name["settings"]["status"] == "ok"
    assert by_name["data dir"]["status"] == "fail"
    assert "not a directory" in by_name["data dir"]["detail"]
    assert "DROPYARD_DATA_DIR" in by_name["data dir"]["fix"]


def test_invalid_settings_are_the_one_failure_reported(tmp_path: Path) -> None:
    code, out = _doctor(tmp_path, env={"DROPYARD_LOG_FORMAT": "xml"})
    assert code == 1
    assert out.splitlines()[0].startswith("FAIL  settings")
    assert "DROPYARD_LOG_FORMAT" in out
