"""Pulling over FTPS and plain FTP from pyftpdlib: the certificate pinned, plain FTP only
when the connection says so, odd names skipped, a trickling server cut off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import update

from dropyard.connections.models import Connection
from dropyard.remote.limits import remote_limits
from tests.ftpserver import PASSWORD, FtpServer
from tests.remote_flow.conftest import Flow


def ftp_pull(flow: Flow, server: FtpServer, folder: str, variant: str = "ftps", **more: Any) -> int:
    details: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.ports[variant],
        "folder": folder,
        "file_pattern": "*.csv",
        "stable_seconds": 0,
        **more,
    }
    if not details.get("plain_ftp"):
        details.setdefault("certificate_fingerprint", server.fingerprint(variant))
    return flow.connection(
        method="ftp", methodology="pull", details=details, username="alice", password=PASSWORD
    )


def test_an_ftps_pull_is_imported_and_answered_in_the_result_folder(
    flow: Flow, ftp_server: FtpServer
) -> None:
    local, folder = ftp_server.new_folder()
    results_local, results = ftp_server.new_folder()
    (local / "orders.csv").write_bytes(flow.csv("ORD-1"))
    (local / "..\\..\\app.csv").write_bytes(b"x")
    connection_id = ftp_pull(
        flow, ftp_server, folder, result_folder=results, delete_after_pull=True
    )

    result = flow.app.remote.pull(connection_id)

    assert result.taken == ("orders.csv",)
    assert "1 skipped: file name '..\\..\\app.csv' may not contain '/' or '\\'" in result.reason
    assert [f.source for f in flow.files(connection_id)] == ["ftp-pull"]
    assert sorted(p.name for p in local.iterdir()) == ["..\\..\\app.csv"]
    assert flow.process_all(connection_id) == ["processed"]
    summary = json.loads((results_local / "result_orders.csv_summary.json").read_bytes())
    assert summary["status"] == "COMPLETED"
    assert (results_local / "receipt_orders.csv.txt").exists()


def test_a_changed_certificate_fails_the_run_and_marks_the_connection(
    flow: Flow, ftp_server: FtpServer
) -> None:
    local, folder = ftp_server.new_folder()
    (local / "orders.csv").write_bytes(flow.csv("ORD-1"))
    connection_id = ftp_pull(flow, ftp_server, folder)
    # The same address now answers with another certificate.
    with flow.app.sessions() as session, session.begin():
        row = session.get(Connection, connection_id)
        assert row is not None
        details = {**row.details, "port": ftp_server.ports["other_cert"]}
        session.execute(
            update(Connection).where(Connection.id == connection_id).values(details=details)
        )
    before = ftp_server.commands("other_cert").count("USER")

    result = flow.app.remote.pull(connection_id)

    presented = ftp_server.fingerprint("other_cert")
    assert result.reason == (
        f"failed: the server's certificate changed: it presented {presented}, "
        f"{ftp_server.fingerprint('ftps')} is pinned; a user must re-approve it"
    )
    assert ftp_server.commands("other_cert").count("USER") == before  # no login was sent
    with flow.app.sessions() as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        assert row.presented_fingerprint == presented


def test_plain_ftp_is_used_only_when_the_connection_allows_it(
    flow: Flow, ftp_server: FtpServer
) -> None:
    local = ftp_server.home("alice")
    refused = ftp_pull(
        flow, ftp_server, "/", "plain_only", certificate_fingerprint=ftp_server.fingerprint()
    )

    result = flow.app.remote.pull(refused)

    assert result.state == "failed"
    assert "the server does not offer TLS; plain FTP must be allowed" in result.reason
    assert local.exists()
    allowed = ftp_pull(flow, ftp_server, "/", "plain_only", plain_ftp=True)
    assert flow.app.remote.pull(allowed).state in ("done", "empty")


def test_a_trickling_server_is_cut_off_at_the_run_time_limit(
    flow: Flow, ftp_server: FtpServer, tmp_path: Path
) -> None:
    local, folder = ftp_server.new_folder()
    (local / "big.csv").write_bytes(flow.csv(*(f"ORD-{n}" for n in range(400))))
    connection_id = ftp_pull(flow, ftp_server, folder, "throttled", plain_ftp=True)
    settings = flow.app.settings.model_copy(update={"remote_max_run_seconds": 2.0})

    result = flow.service(limits=lambda: remote_limits(settings)).pull(connection_id)

    assert result.state == "failed"
    assert result.failed and result.failed[0].startswith("big.csv: ")
    assert "time limit" in result.reason
    assert flow.files(connection_id) == []
