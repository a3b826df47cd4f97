"""`dropyard connections run ID` on a pull connection: one pull now, its outcome printed,
a non-zero exit when the run failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.remote.sshd import Sshd
from tests.remote_flow.conftest import Flow, fresh, put

# The CLI is a thin edge over the service tested on both databases: SQLite is enough here.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def dropyard(flow: Flow, *args: str) -> subprocess.CompletedProcess[str]:
    settings = flow.app.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    env |= {
        "DROPYARD_DATABASE_URL": settings.resolved_database_url,
        "DROPYARD_ALLOW_NETWORKS": json.dumps(settings.allow_networks),
        "DROPYARD_REMOTE_STABLE_CHECK": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "dropyard", "--data-dir", str(settings.data_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_connections_run_pulls_a_pull_connection(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd)
    put(local, "a.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder)

    done = dropyard(flow, "connections", "run", str(connection_id))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "took 1 file (a.csv)"
    assert [f.name for f in flow.files(connection_id)] == ["a.csv"]
    as_json = dropyard(flow, "connections", "run", str(connection_id), "--json")
    assert json.loads(as_json.stdout)["state"] == "empty"


def test_a_failed_pull_exits_non_zero_with_the_reason(flow: Flow, sshd: Sshd) -> None:
    connection_id = flow.sftp_pull(sshd, "/upload/no-such-folder")

    done = dropyard(flow, "connections", "run", str(connection_id))

    assert done.returncode == 1
    assert done.stdout.startswith("failed: ")
    assert "no-such-folder" in done.stdout
