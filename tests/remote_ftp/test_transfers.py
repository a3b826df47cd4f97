"""The FTP(S) client against a real pyftpdlib server: list, fetch, upload, delete."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dropyard.files.spool import Spool
from dropyard.remote.base import Limits, RemoteRefused
from dropyard.remote.ftp import open_ftp
from tests.ftpserver import PASSWORD, FtpServer

CONTENT = b"OrderId,Amount\n" + b"".join(b"%d,1.00\n" % i for i in range(5000))


def _fill(folder: Path) -> None:
    (folder / "orders.csv").write_bytes(CONTENT)
    os.utime(folder / "orders.csv", (1_700_000_000, 1_700_000_000))
    (folder / "empty.csv").write_bytes(b"")
    (folder / "archive").mkdir()  # folders are not listed
    (folder / "archive" / "old.csv").write_bytes(b"old")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("variant", "plain"),
    [("ftps", False), ("ftps", True), ("plain_only", True), ("legacy", False)],
    ids=["ftps", "plain-on-tls-server", "plain-only-server", "legacy-ftps"],
)
def test_roundtrip(
    ftp_server: FtpServer, spool: Callable[[], Spool], variant: str, plain: bool
) -> None:
    folder, remote = ftp_server.new_folder()
    _fill(folder)
    endpoint = ftp_server.endpoint(variant, folder=remote, plain=plain)
    with open_ftp(endpoint, Limits()) as session:
        assert session.presented == ("" if plain else ftp_server.fingerprint(variant))
        listed = sorted(session.list(), key=lambda e: e.name)
        assert [(e.name, e.size) for e in listed] == [
            ("empty.csv", 0),
            ("orders.csv", len(CONTENT)),
        ]
        assert listed[1].mtime == 1_700_000_000

        sink = spool()
        session.fetch("orders.csv", sink)
        assert sink.finish() == (len(CONTENT), hashlib.sha256(CONTENT).hexdigest())

        session.upload("result.csv", io.BytesIO(b"first"), 5)
        session.upload("result.csv", io.BytesIO(b"second version"), 14)  # replaces
        assert (folder / "result.csv").read_bytes() == b"second version"
        assert _leftovers(folder) == []

        assert session.probe_writable() is True
        session.delete("result.csv")
        assert not (folder / "result.csv").exists()
        assert sorted(e.name for e in session.list()) == ["empty.csv", "orders.csv"]
    assert _leftovers(folder) == []


def test_the_legacy_server_is_listed_with_nlst_size_and_mdtm(ftp_server: FtpServer) -> None:
    folder, remote = ftp_server.new_folder()
    _fill(folder)
    with open_ftp(ftp_server.endpoint("legacy", folder=remote), Limits()) as session:
        listed = {e.name: (e.size, e.mtime) for e in session.list()}
    assert listed == {
        "orders.csv": (len(CONTENT), 1_700_000_000),
        "empty.csv": (0, listed["empty.csv"][1]),
    }
    commands = ftp_server.commands("legacy")
    assert "NLST" in commands and "MDTM" in commands


def test_pasv_reply_naming_another_address_is_ignored(
    ftp_server: FtpServer, spool: Callable[[], Spool]
) -> None:
    # The legacy server's PASV reply names 203.0.113.9; a client that believed it would
    # connect there (and time out, or worse, reach whoever listens there).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = ftplib.FTP_TLS(context=context, timeout=10)
    raw.connect("127.0.0.1", ftp_server.ports["legacy"])
    raw.login("alice", PASSWORD)
    assert "203,0,113,9" in raw.sendcmd("PASV")
    raw.close()

    folder, remote = ftp_server.new_folder()
    _fill(folder)
    started = time.monotonic()
    limits = Limits(connect_timeout=3, idle_timeout=3)
    with open_ftp(ftp_server.endpoint("legacy", folder=remote), limits) as session:
        assert {e.name for e in session.list()} == {"orders.csv", "empty.csv"}
        sink = spool()
        session.fetch("orders.csv", sink)
        assert sink.size == len(CONTENT)
        session.upload("back.csv", io.BytesIO(b"ok"), 2)
    assert (folder / "back.csv").read_bytes() == b"ok"
    assert time.monotonic() - started < 3


def test_upload_replaces_a_file_on_a_server_that_never_renames_over_one(
    ftp_server: FtpServer,
) -> None:
    folder, remote = ftp_server.new_folder()
    (folder / "report.csv").write_bytes(b"yesterday")
    with open_ftp(ftp_server.endpoint("legacy", folder=remote), Limits()) as session:
        session.upload("report.csv", io.BytesIO(b"today"), 5)
    assert (folder / "report.csv").read_bytes() == b"today"
    assert _leftovers(folder) == []


def test_data_connections_resume_the_control_tls_session(ftp_server: FtpServer) -> None:
    # The `ftps` server refuses data connections that do not resume the TLS session (as
    # vsftpd does by default); a stock ftplib client is refused, Dropyard's is not.
    folder, remote = ftp_server.new_folder()
    _fill(folder)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    stock = ftplib.FTP_TLS(context=context, timeout=10)
    stock.connect("127.0.0.1", ftp_server.ports["ftps"])
    stock.login("alice", PASSWORD)
    stock.prot_p()
    with pytest.raises(ftplib.error_perm, match="session reuse required"):
        stock.nlst(remote)
    stock.close()

    with open_ftp(ftp_server.endpoint("ftps", folder=remote), Limits()) as session:
        assert {e.name for e in session.list()} == {"orders.csv", "empty.csv"}


def test_read_only_login_is_refused_the_write_and_leaves_nothing(ftp_server: FtpServer) -> None:
    folder, remote = ftp_server.new_folder()
    before = sorted(p.name for p in folder.iterdir())
    with open_ftp(ftp_server.endpoint("ftps", user="reader", folder=remote), Limits()) as session:
        with pytest.raises(RemoteRefused) as refused:
            session.upload("result.csv", io.BytesIO(b"data"), 4)
        assert refused.value.stage == "transfer"
        assert refused.value.message.startswith("the server refused the write: 550")
        assert session.probe_writable() is False
        with pytest.raises(RemoteRefused, match="refused to delete"):
            session.delete("nothing-here.csv")
    assert sorted(p.name for p in folder.iterdir()) == before


def test_a_full_server_says_no_space_left(ftp_server: FtpServer) -> None:
    with (
        open_ftp(ftp_server.endpoint("ftps", user="full"), Limits()) as session,
        pytest.raises(RemoteRefused) as refused,
    ):
        session.upload("result.csv", io.BytesIO(b"data"), 4)
    assert refused.value.message.startswith("no space left on the server (552")
    assert _leftovers(ftp_server.home("full")) == []


def test_a_missing_file_is_refused_with_the_server_reason(
    ftp_server: FtpServer, spool: Callable[[], Spool]
) -> None:
    _, remote = ftp_server.new_folder()
    with open_ftp(ftp_server.endpoint("ftps", folder=remote), Limits()) as session:
        with pytest.raises(RemoteRefused) as refused:
            session.fetch("gone.csv", spool())
        assert refused.value.message.startswith("the server refused to send 'gone.csv': 550")
        assert list(session.list()) == []  # the session goes on


def test_names_that_are_not_plain_file_names_are_refused(ftp_server: FtpServer) -> None:
    with open_ftp(ftp_server.endpoint("ftps"), Limits()) as session:
        for name in ("../alice/x.csv", "a\r\nDELE x", "", ".."):
            with pytest.raises(RemoteRefused, match="not a plain file name"):
                session.delete(name)


def test_a_missing_folder_is_refused_at_the_folder_stage(ftp_server: FtpServer) -> None:
    with pytest.raises(RemoteRefused) as refused:
        open_ftp(ftp_server.endpoint("ftps", folder="/no/such/folder"), Limits())
    assert refused.value.stage == "folder"
    assert "'/no/such/folder' cannot be opened: 550" in refused.value.message
