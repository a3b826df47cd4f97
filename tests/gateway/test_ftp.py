"""FTP(S) drop boxes with real clients: curl, lftp and ftplib against `dropyard serve`.

TLS is required unless a connection allows plain FTP; every bad input is answered with a
5xx reply and leaves nothing behind (no `files` row, no spool file).
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from dropyard.files.models import File
from tests.gateway.ftp_helpers import client_context, curl, ftps, lftp, plain, refused
from tests.gateway.sftp_client import sftp_batch
from tests.support import DropBox, RunningServer, drop_box, start_server

CSV = (
    b"CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CurrencyCode,Amount\n"
    b"1001,5001,2026-11-20T10:15:00Z,ORD-1,clk-1,USD,59.90\n"
)


def _files(server: RunningServer, connection_id: int) -> list[File]:
    with server.app.sessions() as session:
        return list(session.scalars(select(File).where(File.connection_id == connection_id)))


def _leftovers(server: RunningServer, wait: float = 3.0) -> list[str]:
    """Spool files still there once the server had `wait` seconds to notice a cut."""
    spool = server.settings.spool_dir
    deadline = time.monotonic() + wait
    while True:
        found = sorted(p.name for p in spool.iterdir()) if spool.exists() else []
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture
def box(server: RunningServer) -> DropBox:
    return drop_box(server.app, method="ftp")


def test_upload_with_curl_over_ftps_commits_and_writes_a_receipt(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    (tmp_path / "orders.csv").write_bytes(CSV)
    upload = curl(server, box, f"/{box.folder}/", "-T", "orders.csv", cwd=tmp_path)
    assert upload.code == 0, upload.err
    # the 226 comes after the commit and names the trace id
    rows = _files(server, box.connection_id)
    assert [(r.name, r.state, r.size, r.source) for r in rows] == [
        ("orders.csv", "received", len(CSV), "ftp")
    ]
    assert f"226 Transfer complete; trace id {rows[0].trace_id}" in upload.err
    with server.app.files.open_stored(rows[0].id) as handle:
        assert handle.read() == CSV

    listing = curl(server, box, f"/{box.folder}/", cwd=tmp_path)
    assert listing.code == 0, listing.err
    assert "receipt_orders.csv.txt" in listing.out
    got = curl(server, box, f"/{box.folder}/receipt_orders.csv.txt", "-o", "r.txt", cwd=tmp_path)
    assert got.code == 0, got.err
    receipt = (tmp_path / "r.txt").read_text()
    assert f"sha256: {hashlib.sha256(CSV).hexdigest()}" in receipt
    assert f"traceId: {rows[0].trace_id}" in receipt
    # the banner names no software version; the login and the upload are audited
    assert "< 220 Dropyard FTP ready." in upload.err
    actions = {e.action for e in server.app.audit.recent(account_id=box.account_id)}
    assert {"login.success", "file.upload"} <= actions


def test_upload_with_lftp(server: RunningServer, box: DropBox, tmp_path: Path) -> None:
    (tmp_path / "clicks.csv").write_bytes(CSV)
    result = lftp(
        server,
        box,
        f"cd {box.folder}; put clicks.csv; cls -1; get receipt_clicks.csv.txt -o receipt.txt",
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    assert "receipt_clicks.csv.txt" in result.out
    rows = _files(server, box.connection_id)
    assert [(r.name, r.state, r.size) for r in rows] == [("clicks.csv", "received", len(CSV))]
    assert hashlib.sha256(CSV).hexdigest() in (tmp_path / "receipt.txt").read_text()


def test_a_report_downloaded_over_ftps_is_recorded(server: RunningServer, tmp_path: Path) -> None:
    box = drop_box(
        server.app,
        method="ftp",
        direction="outbound",
        data_type="reports",
        methodology="hosted",
        details={"report": "performance_by_day", "range": "yesterday"},
    )
    made = server.app.outbound.run(box.connection_id).file
    assert made is not None
    got = curl(server, box, f"/{box.folder}/{made.name}", "-o", "report.csv", cwd=tmp_path)
    assert got.code == 0, got.err
    assert (tmp_path / "report.csv").read_text().startswith("Date,CampaignId")
    # recorded once the transfer is over, right after the 226
    deadline = time.monotonic() + 5
    while True:
        with server.app.sessions() as session:
            state = session.scalar(select(File.state).where(File.id == made.id))
        if state == "downloaded" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert state == "downloaded"


def test_plain_ftp_only_where_the_connection_allows_it(server: RunningServer) -> None:
    tls_only = drop_box(server.app, method="ftp")
    # a second folder of the same login that allows plain FTP
    both = drop_box(
        server.app,
        method="ftp",
        details={"plain_ftp": True},
        account_id=tls_only.account_id,
        credential_id=tls_only.credential_id,
        password=tls_only.password,
    )
    lonely = drop_box(server.app, method="ftp")

    with plain(server) as client:
        answer = refused(client.login, lonely.login, lonely.password)
        assert answer.startswith("530")
        assert "AUTH TLS" in answer

    with plain(server) as client:
        client.login(both.login, both.password)
        assert client.nlst("/") == [both.folder]  # the TLS-only folder is not there
        assert refused(client.cwd, f"/{tls_only.folder}").startswith("550")
        assert refused(
            client.storbinary, f"STOR /{tls_only.folder}/x.csv", io.BytesIO(CSV)
        ).startswith("550")
        client.storbinary(f"STOR /{both.folder}/plain.csv", io.BytesIO(CSV))
    assert [(r.name, r.source) for r in _files(server, both.connection_id)] == [
        ("plain.csv", "ftp")
    ]
    assert _files(server, tls_only.connection_id) == []

    with ftps(server, both, cwd=False) as client:
        assert sorted(client.nlst("/")) == sorted([both.folder, tls_only.folder])


def test_paths_never_leave_the_virtual_root(server: RunningServer, box: DropBox) -> None:
    with ftps(server, box) as client:
        for path in ("..", "/../..", "../../..", "//", f"/{box.folder}/../../.."):
            client.cwd(f"/{box.folder}")
            client.cwd(path)
            assert client.pwd() == "/", path
        for path in ("%2e%2e", "/etc", "/tmp", f"/{box.folder}/receipt_none.txt"):
            assert refused(client.cwd, path).startswith("550"), path
            assert client.pwd() == "/"
        client.cwd("/")
        for path in ("/..", "../..", f"/{box.folder}/../..", "//", "/etc", "/tmp", "%2e%2e"):
            try:
                listed = client.nlst(path)
            except ftplib.error_perm:
                listed = []
            assert set(listed) <= {box.folder, f"/{box.folder}"}, (path, listed)
        for path in (
            "../../etc/passwd",
            "/../../../etc/passwd",
            f"/{box.folder}/../../etc/hostname",
            "%2e%2e/%2e%2e/etc/passwd",
            f"/{box.folder}/..%2f..%2fetc%2fpasswd",
        ):
            got: list[bytes] = []
            assert refused(client.retrbinary, f"RETR {path}", got.append).startswith("550")
            assert got == []
        for path in ("../x.csv", "/x.csv", f"/{box.folder}/../x.csv", "/../../../../tmp/x.csv"):
            assert refused(client.storbinary, f"STOR {path}", io.BytesIO(b"a\n")).startswith("550")
        assert "/.." not in client.sendcmd("MLST /..")
    assert not (server.settings.data_dir / "x.csv").exists()
    assert not Path("/tmp/x.csv").exists() or Path("/tmp/x.csv").read_bytes() != b"a\n"
    assert _files(server, box.connection_id) == []


def test_bad_and_reserved_names_are_refused(server: RunningServer, box: DropBox) -> None:
    with ftps(server, box) as client:
        for name, message in (
            ("receipt_orders.csv", "reserved"),
            ("result_x.csv", "reserved"),
            (".hidden.csv", "start with '.'"),
            ("bell\x07.csv", "control character"),
            ("x" * 256, "longer than 255"),
        ):
            answer = refused(client.storbinary, f"STOR {name}", io.BytesIO(b"a\n"))
            assert answer.startswith("550"), (name, answer)
            assert message in answer, (name, answer)
        # NUL, and CR or LF alone inside a command line (ftplib refuses to send CR/LF)
        answer = refused(client.storbinary, "STOR a\x00b.csv", io.BytesIO(b"a\n"))
        assert answer.startswith("501")
        for raw in (b"STOR bad\rname.csv\r\n", b"STOR bad\nname.csv\r\n"):
            client.sock.sendall(raw)
            assert refused(client.getresp).startswith("501")
        assert client.voidcmd("NOOP").startswith("200")
    assert _files(server, box.connection_id) == []
    assert _leftovers(server) == []


def test_outbound_folder_and_other_accounts_are_out_of_reach(server: RunningServer) -> None:
    outbound = drop_box(
        server.app, method="ftp", direction="outbound", data_type="reports", methodology="hosted"
    )
    other = drop_box(server.app, method="ftp")
    with ftps(server, outbound) as client:
        answer = refused(client.storbinary, "STOR x.csv", io.BytesIO(b"a\n"))
        assert answer.startswith("550")
        assert "read-only" in answer
        assert client.nlst("/") == [outbound.folder]
        assert refused(client.cwd, f"/{other.folder}").startswith("550")
        assert refused(
            client.storbinary, f"STOR /{other.folder}/x.csv", io.BytesIO(b"a\n")
        ).startswith("550")
    assert _files(server, outbound.connection_id) == []
    assert _files(server, other.connection_id) == []


def test_folders_modes_and_dropyards_files_cannot_be_changed(
    server: RunningServer, box: DropBox
) -> None:
    with ftps(server, box) as client:
        client.storbinary("STOR orders.csv", io.BytesIO(CSV))
        receipt = "receipt_orders.csv.txt"
        assert refused(client.mkd, "sub").startswith("550")
        assert refused(client.mkd, "/newfolder").startswith("550")
        assert refused(client.rmd, f"/{box.folder}").startswith("550")
        assert refused(client.sendcmd, f"SITE CHMOD 777 {receipt}").startswith("550")
        assert refused(client.rename, receipt, "other.txt").startswith("550")
        assert refused(client.sendcmd, "STOU").startswith("500")
        assert client.nlst() == [receipt]
        # receipts are the partner's to delete
        client.delete(receipt)
        assert client.nlst() == []


def test_staged_upload_commits_on_rename(server: RunningServer, box: DropBox) -> None:
    with ftps(server, box) as client:
        answer = client.storbinary("STOR orders.csv.filepart", io.BytesIO(CSV))
        assert "rename" in answer
        assert _files(server, box.connection_id) == []
        client.rename("orders.csv.filepart", "orders.csv")
    assert [(r.name, r.size) for r in _files(server, box.connection_id)] == [
        ("orders.csv", len(CSV))
    ]


def test_disconnect_mid_upload_leaves_nothing(server: RunningServer) -> None:
    box = drop_box(server.app, method="ftp", details={"plain_ftp": True})
    # TLS data connection closed without close_notify: a cut, not the end of the file
    with ftps(server, box) as client:
        data = client.transfercmd("STOR cut.csv")
        data.sendall(b"x" * 300_000)
        socket.socket(fileno=data.detach()).close()
        answer = refused(client.getresp)
        assert answer.startswith("426")
    # the control connection dies with the upload open
    with ftps(server, box) as client:
        data = client.transfercmd("STOR killed.csv")
        data.sendall(b"x" * 300_000)
        client.sock.shutdown(socket.SHUT_RDWR)
        time.sleep(0.5)
        data.close()
    # plain FTP: the data connection is reset
    with plain(server) as client:
        client.login(box.login, box.password)
        data = client.transfercmd(f"STOR /{box.folder}/reset.csv")
        data.sendall(b"x" * 300_000)
        time.sleep(0.3)
        data.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        data.close()
        assert refused(client.getresp).startswith("426")
    assert _leftovers(server) == []
    assert _files(server, box.connection_id) == []


def test_file_over_the_size_limit_is_refused_and_leaves_nothing(
    server: RunningServer, box: DropBox
) -> None:
    with ftps(server, box) as client:
        try:
            client.storbinary("STOR big.csv", io.BytesIO(b"x" * (9 * 1024 * 1024)))
        except ftplib.error_perm as exc:
            answer = str(exc)
        except (OSError, ssl.SSLError):
            # the server closed the data connection while the client was still sending
            answer = refused(client.getresp)
        else:
            raise AssertionError("a file over the limit was accepted")
        assert answer.startswith("552")
        assert "limit" in answer
    assert _files(server, box.connection_id) == []
    assert _leftovers(server) == []


def test_data_connections_stay_with_the_client(server: RunningServer, box: DropBox) -> None:
    with ftps(server, box, protect=False) as client:
        assert refused(client.sendcmd, "PASV").startswith("521")  # PROT P first
        client.prot_p()
        for command in ("PORT 10,0,0,1,200,10", "EPRT |1|10.0.0.1|5000|", "PORT 127,0,0,1,0,21"):
            assert refused(client.sendcmd, command).startswith("501"), command
        host, port = client.makepasv()
        with socket.create_connection((host, port), source_address=("127.0.0.2", 0)):
            assert refused(client.getresp).startswith("425")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_old_tls_versions_are_refused(server: RunningServer) -> None:
    for newest, accepted in ((ssl.TLSVersion.TLSv1_1, False), (ssl.TLSVersion.TLSv1_2, True)):
        context = client_context()
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = newest
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        client = ftplib.FTP_TLS(context=context, timeout=20)
        client.connect("127.0.0.1", server.ports["ftp"])
        try:
            if accepted:
                client.auth()
                assert client.sock.version() == "TLSv1.2"
            else:
                with pytest.raises(ssl.SSLError) as failed:
                    client.auth()
                # the server said no; the client did offer the old version
                assert "NO_PROTOCOLS_AVAILABLE" not in str(failed.value)
        finally:
            client.close()


def test_brute_force_over_ftp_bans_the_address_for_sftp_too(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    address = "127.0.0.45"
    answers: list[str] = []

    def wrong() -> None:
        with ftps(server, bind=address) as client:
            answers.append(refused(client.login, box.login, "not-the-password"))

    tries = [threading.Thread(target=wrong) for _ in range(5)]
    for attempt in tries:
        attempt.start()
    for attempt in tries:
        attempt.join()
    assert answers == ["530 Authentication failed."] * 5
    # the address is banned on FTP and, through the shared defender, on SFTP...
    client = ftplib.FTP_TLS(context=client_context(), timeout=20)
    with pytest.raises(ftplib.error_temp, match="421"):
        client.connect("127.0.0.1", server.ports["ftp"], source_address=(address, 0))
    client.close()
    banned = sftp_batch(
        server.ports["sftp"], box.login, box.password, "ls\n", cwd=tmp_path, bind=address
    )
    assert banned.code != 0
    # ...while other addresses still work
    with ftps(server, box, bind="127.0.0.46") as client:
        assert client.pwd() == f"/{box.folder}"


def test_stopping_the_server_aborts_an_upload_in_flight(tmp_path: Path) -> None:
    running = start_server(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'data' / 'dropyard.db'}",
        roles="ftp",
        extra_env={"DROPYARD_SHUTDOWN_GRACE_SECONDS": "0.5"},
    )
    try:
        box = drop_box(running.app, method="ftp")
        with ftps(running, box) as client:
            data = client.transfercmd("STOR stopped.csv")
            data.sendall(b"x" * 300_000)
            assert len(_leftovers(running, wait=0)) == 1  # the upload is spooling
            started = time.monotonic()
            assert running.stop() == 0
            # the grace period passed, then the upload was cut off
            assert time.monotonic() - started < 10
            data.close()
        assert _leftovers(running, wait=0) == []
        assert _files(running, box.connection_id) == []
    finally:
        running.stop()
