"""What a pull run says when the partner's server is not what it should be: a changed host
key (re-approved by a person), the network guard, a wrong password, a host that does not
exist or does not answer, a server that stalls. A failed run marks the connection; the
next success clears it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from dropyard.accounts.actors import Actor
from dropyard.accounts.models import AuditEvent
from dropyard.connections.models import Connection
from dropyard.errors import Forbidden, Invalid
from dropyard.files.service import FileService
from dropyard.files.spool import Spool
from dropyard.remote.guard import NetworkGuard
from dropyard.remote.limits import remote_limits
from tests.remote.sshd import Sshd
from tests.remote_flow.conftest import Flow, fresh, put
from tests.support import OPERATOR


def connection_row(flow: Flow, connection_id: int) -> Connection:
    with flow.app.sessions() as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        session.expunge(row)
        return row


def test_a_changed_host_key_fails_every_run_until_a_user_approves_the_new_one(
    flow: Flow, sshd: Sshd
) -> None:
    folder, local = fresh(sshd)
    put(local, "a.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder)
    pinned = sshd.fingerprint
    try:
        presented = sshd.restart(new_host_key=True)  # a man in the middle, say
        run_id = flow.scheduled_run(connection_id)
        logged = len(sshd.log())

        result = flow.app.remote.pull(connection_id, run_id=run_id)

        expected = (
            f"the server's host key changed: it presented {presented}, {pinned} is pinned; "
            "a user must re-approve it"
        )
        assert result.state == "failed"
        assert flow.run_outcome(run_id) == ("failed", f"failed: {expected}")
        row = connection_row(flow, connection_id)
        assert row.remote_error == expected
        assert row.presented_fingerprint == presented
        assert row.remote_error_at is not None
        assert flow.files(connection_id) == []
        # No credential went to the stranger: the key exchange ended the session.
        during = sshd.log()[logged:]
        assert "Connection closed by 127.0.0.1" in during or "preauth" in during
        assert "password for" not in during
        # Later runs keep failing, whatever the server presents by then.
        assert flow.app.remote.pull(connection_id).reason == f"failed: {expected}"

        wrong = pinned
        with pytest.raises(Invalid, match="is not the host key the server presents now"):
            flow.app.remote.approve(OPERATOR, connection_id, fingerprint=wrong)
        member = Actor(kind="user", name="m", account_id=flow.account_id, role="member")
        with pytest.raises(Forbidden):
            flow.app.remote.approve(member, connection_id, fingerprint=presented)
        assert flow.app.remote.pull(connection_id).state == "failed"

        flow.app.remote.approve(OPERATOR, connection_id, fingerprint=presented)

        row = connection_row(flow, connection_id)
        assert row.details["host_key_fingerprint"] == presented
        assert (row.remote_error, row.presented_fingerprint) == (None, None)
        assert flow.app.remote.pull(connection_id).taken == ("a.csv",)
        with flow.app.sessions() as session:
            actions = session.scalars(
                select(AuditEvent.action).where(AuditEvent.target == f"connection:{connection_id}")
            ).all()
        assert "connection.host_changed" in actions
        assert "connection.approve_host" in actions
    finally:
        sshd.restart()


def test_a_loopback_target_without_the_allow_list_is_refused(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd)
    put(local, "a.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder)
    guarded = flow.service(guard=NetworkGuard(()))  # no DROPYARD_ALLOW_NETWORKS
    run_id = flow.scheduled_run(connection_id)

    result = guarded.pull(connection_id, run_id=run_id)

    assert result.state == "failed"
    assert result.reason == (
        "failed: host '127.0.0.1' resolves to 127.0.0.1, a loopback address; an operator "
        "can allow it with DROPYARD_ALLOW_NETWORKS"
    )
    assert flow.run_outcome(run_id)[0] == "failed"
    assert connection_row(flow, connection_id).remote_error == result.reason.removeprefix(
        "failed: "
    )
    assert flow.files(connection_id) == []


def test_a_name_resolving_to_a_private_address_is_refused(flow: Flow, sshd: Sshd) -> None:
    connection_id = flow.sftp_pull(sshd, "/upload", host="files.partner.example")

    def resolver(host: str, port: int, family: int, kind: int) -> list[tuple[object, ...]]:
        assert host == "files.partner.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    result = flow.service(guard=NetworkGuard((), resolver=resolver)).pull(connection_id)

    assert result.reason == (
        "failed: host 'files.partner.example' resolves to 10.1.2.3, a private address; an "
        "operator can allow it with DROPYARD_ALLOW_NETWORKS"
    )


def test_a_wrong_password_fails_the_run_with_a_readable_reason_then_success_clears_it(
    flow: Flow, sshd: Sshd
) -> None:
    folder, local = fresh(sshd)
    put(local, "a.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.connection(
        method="sftp",
        methodology="pull",
        details={
            "host": "127.0.0.1",
            "port": sshd.port,
            "folder": folder,
            "file_pattern": "*.csv",
            "host_key_fingerprint": sshd.fingerprint,
            "stable_seconds": 0,
        },
        username=sshd.user.name,
        password="not-the-password",
    )

    result = flow.app.remote.pull(connection_id)

    assert result.state == "failed"
    assert "refused the login" in result.reason
    assert sshd.user.name in result.reason
    assert "not-the-password" not in result.reason
    assert connection_row(flow, connection_id).remote_error == result.reason.removeprefix(
        "failed: "
    )
    credential_id = connection_row(flow, connection_id).credential_id
    assert credential_id is not None
    flow.app.credentials.rotate(OPERATOR, credential_id, password=sshd.user.password)
    assert flow.app.remote.pull(connection_id).taken == ("a.csv",)
    assert connection_row(flow, connection_id).remote_error is None


def test_an_unknown_host_fails_the_run(flow: Flow, sshd: Sshd) -> None:
    connection_id = flow.sftp_pull(sshd, "/upload", host="no-such-host.invalid")

    result = flow.app.remote.pull(connection_id)

    assert result.reason == "failed: host 'no-such-host.invalid' could not be resolved"


def test_a_refused_port_fails_the_run(flow: Flow, sshd: Sshd) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    connection_id = flow.sftp_pull(sshd, "/upload", port=closed)

    result = flow.app.remote.pull(connection_id)

    assert result.state == "failed"
    assert str(closed) in result.reason
    assert "connection refused" in result.reason


class FreezingSpool(Spool):
    """Where a fetch writes: the server freezes once the first bytes have arrived."""

    def __init__(self, directory: Path, *, limit: int, freeze: Callable[[], None]) -> None:
        super().__init__(directory, limit=limit)
        self._freeze: Callable[[], None] | None = freeze

    def write(self, data: bytes | memoryview, offset: int | None = None) -> None:
        super().write(data, offset)
        if self._freeze is not None:
            self._freeze, freeze = None, self._freeze
            freeze()


def test_a_server_that_stalls_mid_transfer_is_cut_off_with_a_clear_error(
    flow: Flow, sshd: Sshd, tmp_path: Path
) -> None:
    folder, local = fresh(sshd)
    put(local, "big.csv", flow.csv(*(f"ORD-{n}" for n in range(50_000))), owner=sshd)
    put(local, "small.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder)
    frozen: list[int] = []
    settings = flow.app.settings.model_copy(update={"remote_idle_timeout": 2.0})

    def freeze_once() -> None:
        if not frozen:
            frozen.extend(sshd.freeze_sessions())

    class Files(FileService):
        def open_spool(self, *, limit: int | None = None) -> Spool:
            return FreezingSpool(tmp_path / "spool", limit=1024**3, freeze=freeze_once)

    files = Files(
        flow.app.sessions, flow.app.storage, spool_dir=tmp_path / "spool", max_file_bytes=1024**3
    )
    started = time.monotonic()
    try:
        result = flow.service(files=files, limits=lambda: remote_limits(settings)).pull(
            connection_id
        )
    finally:
        sshd.end_sessions(frozen)

    assert frozen  # the server stopped in the middle of the first file
    assert time.monotonic() - started < 10
    # Cut off after the idle timeout; the next file got a fresh session.
    assert result.failed == ("big.csv: the server sent nothing for 2 s",)
    assert result.taken == ("small.csv",)
    assert [f.name for f in flow.files(connection_id)] == ["small.csv"]
    assert list((tmp_path / "spool").iterdir()) == []  # nothing half-fetched is left
