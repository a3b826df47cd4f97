"""SFTP drop boxes with real clients: OpenSSH `sftp` (via sshpass for passwords), paramiko.

Every bad input is answered with a protocol error and leaves nothing behind.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import paramiko
import pytest
from sqlalchemy import select

from dropyard.files.models import File
from tests.gateway.sftp_client import sftp_batch
from tests.support import OPERATOR, DropBox, RunningServer, drop_box

CSV = (
    b"CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CurrencyCode,Amount\n"
    b"1001,5001,2026-11-20T10:15:00Z,ORD-1,clk-1,USD,59.90\n"
)


def _files(server: RunningServer, connection_id: int) -> list[File]:
    with server.app.sessions() as session:
        return list(session.scalars(select(File).where(File.connection_id == connection_id)))


def _leftovers(server: RunningServer) -> list[str]:
    spool = server.settings.spool_dir
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


def _paramiko(server: RunningServer, box: DropBox, bind: str = "127.0.0.1") -> paramiko.SFTPClient:
    sock = socket.create_connection(("127.0.0.1", server.ports["sftp"]), source_address=(bind, 0))
    transport = paramiko.Transport(sock)
    transport.connect(username=box.login, password=box.password)
    return paramiko.SFTPClient.from_transport(transport)  # type: ignore[return-value]


@pytest.fixture
def box(server: RunningServer) -> DropBox:
    return drop_box(server.app)


def test_upload_with_openssh_sftp_commits_and_writes_a_receipt(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    (tmp_path / "orders.csv").write_bytes(CSV)
    result = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"put orders.csv /{box.folder}/orders.csv\nls -l /{box.folder}\n"
        f"get /{box.folder}/receipt_orders.csv.txt receipt.txt\n",
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    assert "receipt_orders.csv.txt" in result.out
    rows = _files(server, box.connection_id)
    assert [(r.name, r.state, r.size, r.source) for r in rows] == [
        ("orders.csv", "received", len(CSV), "sftp")
    ]
    receipt = (tmp_path / "receipt.txt").read_text()
    import hashlib

    assert f"sha256: {hashlib.sha256(CSV).hexdigest()}" in receipt
    assert f"traceId: {rows[0].trace_id}" in receipt
    assert f"size: {len(CSV)}" in receipt
    # the stored bytes are the uploaded bytes
    with server.app.files.open_stored(rows[0].id) as handle:
        assert handle.read() == CSV


def test_root_lists_only_the_logins_folders(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    other = drop_box(server.app)  # another account's box
    result = sftp_batch(server.ports["sftp"], box.login, box.password, "ls -1 /\n", cwd=tmp_path)
    assert result.code == 0, result.err
    listed = [
        line.strip().rsplit("/", 1)[-1]
        for line in result.out.splitlines()
        if not line.startswith("sftp>")
    ]
    assert listed == [box.folder]
    assert other.folder not in result.out


def test_public_key_login(server: RunningServer, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    account = server.app.accounts.create_account(
        OPERATOR, name=f"Keyed {os.getpid()}-{time.time_ns()}", kind="brand"
    )
    from tests.support import unique, walk_wizard

    created = walk_wizard(
        server.app,
        OPERATOR,
        account=account.id,
        name=unique("Keyed box"),
        direction="inbound",
        data_type="clicks",
        method="sftp",
        methodology="push",
        credential={
            "new": {
                "kind": "hosted_public_key",
                "name": "laptop",
                "public_key": key.with_suffix(".pub").read_text(),
            }
        },
    )
    login = server.app.credentials.get(OPERATOR, created.connection.credential_id or 0).login
    (tmp_path / "clicks.csv").write_bytes(b"ClickId\n")
    result = sftp_batch(
        server.ports["sftp"],
        login or "",
        None,
        f"put clicks.csv /{created.connection.folder}/\n",
        cwd=tmp_path,
        key=key,
    )
    assert result.code == 0, result.err
    assert [r.name for r in _files(server, created.connection.id)] == ["clicks.csv"]


@pytest.mark.parametrize(
    "path",
    [
        "../../../etc/passwd",
        "/../../etc/passwd",
        "//etc/passwd",
        "/{folder}/../../etc/passwd",
        "/{folder}/../../../../../../etc/hostname",
        "%2e%2e/%2e%2e/etc/passwd",
        "/{folder}/..%2f..%2fetc%2fpasswd",
    ],
)
def test_traversal_reads_nothing_outside(
    server: RunningServer, box: DropBox, tmp_path: Path, path: str
) -> None:
    result = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"get {path.format(folder=box.folder)} stolen\n",
        cwd=tmp_path,
    )
    assert result.code != 0
    assert not (tmp_path / "stolen").exists()


def test_traversal_listing_shows_only_the_root(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    for path in ("/..", "../..", "//", f"/{box.folder}/../..", "/etc", "/tmp"):
        result = sftp_batch(
            server.ports["sftp"], box.login, box.password, f"ls -1 {path}\n", cwd=tmp_path
        )
        listed = [
            ln.strip().rsplit("/", 1)[-1]
            for ln in result.out.splitlines()
            if not ln.startswith("sftp>")
        ]
        assert set(listed) <= {box.folder}, (path, listed)


def test_traversal_writes_land_nowhere_else(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    (tmp_path / "x.csv").write_bytes(b"a\n")
    target_outside = server.settings.data_dir / "x.csv"
    for path in ("../x.csv", "/x.csv", f"/{box.folder}/../x.csv", "/../../../../tmp/x.csv"):
        result = sftp_batch(
            server.ports["sftp"], box.login, box.password, f"put x.csv {path}\n", cwd=tmp_path
        )
        assert result.code != 0, path
    assert not target_outside.exists()
    assert not Path("/tmp/x.csv").exists() or Path("/tmp/x.csv").read_bytes() != b"a\n"
    assert _files(server, box.connection_id) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("receipt_orders.csv", "reserved"),
        ("result_x.csv", "reserved"),
        (".hidden.csv", "start with '.'"),
        ("a\x00b.csv", "NUL"),
        ("bad\r\nname.csv", "CR"),
        ("x" * 256, "longer than 255"),
    ],
)
def test_bad_names_are_refused(
    server: RunningServer, box: DropBox, name: str, message: str
) -> None:
    client = _paramiko(server, box)
    try:
        with (
            pytest.raises(OSError, match=r".") as refused,
            client.open(f"/{box.folder}/{name}", "wb") as handle,
        ):
            handle.write(b"a\n")
    finally:
        client.close()
    assert message.lower() in str(refused.value).lower() or isinstance(
        refused.value, PermissionError
    )
    assert _files(server, box.connection_id) == []


def test_outbound_folder_is_read_only(server: RunningServer, tmp_path: Path) -> None:
    outbound = drop_box(server.app, direction="outbound", data_type="reports", methodology="hosted")
    (tmp_path / "x.csv").write_bytes(b"a\n")
    result = sftp_batch(
        server.ports["sftp"],
        outbound.login,
        outbound.password,
        f"put x.csv /{outbound.folder}/x.csv\n",
        cwd=tmp_path,
    )
    assert result.code != 0
    assert "read-only" in result.err.lower() or "permission denied" in result.err.lower()
    assert _files(server, outbound.connection_id) == []


def test_another_accounts_folder_does_not_exist(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    other = drop_box(server.app)
    (tmp_path / "x.csv").write_bytes(b"a\n")
    result = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"put x.csv /{other.folder}/x.csv\nls /{other.folder}\n",
        cwd=tmp_path,
    )
    assert result.code != 0
    assert "no such file" in result.err.lower() or "not found" in result.err.lower()
    assert _files(server, other.connection_id) == []


def test_links_mkdir_chmod_rename_across_are_refused(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    (tmp_path / "orders.csv").write_bytes(CSV)
    assert (
        sftp_batch(
            server.ports["sftp"],
            box.login,
            box.password,
            f"put orders.csv /{box.folder}/orders.csv\n",
            cwd=tmp_path,
        ).code
        == 0
    )
    receipt = f"/{box.folder}/receipt_orders.csv.txt"
    for command in (
        f"ln -s /etc/passwd /{box.folder}/link",
        f"ln {receipt} /{box.folder}/hard",
        f"mkdir /{box.folder}/sub",
        "mkdir /newfolder",
        f"rmdir /{box.folder}",
        f"rename {receipt} /{box.folder}/other.txt",
    ):
        result = sftp_batch(
            server.ports["sftp"], box.login, box.password, command + "\n", cwd=tmp_path
        )
        assert result.code != 0, command
    # the receipt is still there, unchanged; nothing new appeared
    listing = sftp_batch(
        server.ports["sftp"], box.login, box.password, f"ls -1 /{box.folder}\n", cwd=tmp_path
    )
    names = [
        ln.strip().rsplit("/", 1)[-1]
        for ln in listing.out.splitlines()
        if not ln.startswith("sftp>")
    ]
    assert names == ["receipt_orders.csv.txt"]


def test_partner_may_delete_receipts(server: RunningServer, box: DropBox, tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_bytes(CSV)
    result = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"put orders.csv /{box.folder}/\nrm /{box.folder}/receipt_orders.csv.txt\n"
        f"ls -1 /{box.folder}\n",
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    assert "receipt_orders.csv.txt" not in result.out.split("ls -1")[-1]


def test_disconnect_mid_upload_leaves_nothing(server: RunningServer, box: DropBox) -> None:
    client = _paramiko(server, box)
    handle = client.open(f"/{box.folder}/big.csv", "wb")
    handle.write(b"x" * 300_000)
    handle.flush()
    client.get_channel().get_transport().close()  # type: ignore[union-attr]
    time.sleep(1.0)
    assert _files(server, box.connection_id) == []
    assert _leftovers(server) == []


def test_file_over_the_size_limit_is_refused_and_leaves_nothing(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (9 * 1024 * 1024))
    result = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"put big.csv /{box.folder}/big.csv\n",
        cwd=tmp_path,
    )
    assert result.code != 0
    assert _files(server, box.connection_id) == []
    time.sleep(0.5)
    assert _leftovers(server) == []


def test_staged_upload_commits_on_rename(server: RunningServer, box: DropBox) -> None:
    client = _paramiko(server, box)
    try:
        with client.open(f"/{box.folder}/orders.csv.filepart", "wb") as handle:
            handle.write(CSV[:20])
        # resume: append the rest to the staged file within the same session
        with client.open(f"/{box.folder}/orders.csv.filepart", "ab") as handle:
            handle.write(CSV[20:])
        assert _files(server, box.connection_id) == []
        client.posix_rename(f"/{box.folder}/orders.csv.filepart", f"/{box.folder}/orders.csv")
    finally:
        client.close()
    rows = _files(server, box.connection_id)
    assert [(r.name, r.size) for r in rows] == [("orders.csv", len(CSV))]
    with server.app.files.open_stored(rows[0].id) as handle:
        assert handle.read() == CSV


def test_wrong_password_and_unknown_user_look_the_same(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    wrong = sftp_batch(
        server.ports["sftp"], box.login, "not-the-password", "ls\n", cwd=tmp_path, bind="127.0.0.21"
    )
    unknown = sftp_batch(
        server.ports["sftp"],
        "nobody-here",
        "not-the-password",
        "ls\n",
        cwd=tmp_path,
        bind="127.0.0.21",
    )
    assert wrong.code != 0
    assert unknown.code != 0
    assert wrong.err.replace(box.login, "X") == unknown.err.replace("nobody-here", "X")


def test_brute_force_gets_the_address_banned(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    address = "127.0.0.33"
    for _ in range(5):
        sftp_batch(server.ports["sftp"], box.login, "wrong", "ls\n", cwd=tmp_path, bind=address)
    # now even the right password is refused from that address...
    banned = sftp_batch(
        server.ports["sftp"], box.login, box.password, "ls\n", cwd=tmp_path, bind=address
    )
    assert banned.code != 0
    # ...while other addresses still work
    fine = sftp_batch(
        server.ports["sftp"], box.login, box.password, "ls\n", cwd=tmp_path, bind="127.0.0.34"
    )
    assert fine.code == 0, fine.err


def test_shell_and_exec_are_refused(server: RunningServer, box: DropBox) -> None:
    done = subprocess.run(
        [
            "sshpass",
            "-p",
            box.password,
            "ssh",
            "-p",
            str(server.ports["sftp"]),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PubkeyAuthentication=no",
            f"{box.login}@127.0.0.1",
            "cat /etc/passwd",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode != 0
    assert "root:" not in done.stdout


def test_logins_uploads_downloads_and_deletes_are_audited(
    server: RunningServer, box: DropBox, tmp_path: Path
) -> None:
    (tmp_path / "orders.csv").write_bytes(CSV)
    result = sftp_batch(
        server.ports["sftp"],
        box.login,
        box.password,
        f"put orders.csv /{box.folder}/\nget /{box.folder}/receipt_orders.csv.txt r.txt\n"
        f"rm /{box.folder}/receipt_orders.csv.txt\n",
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    events = server.app.audit.recent(account_id=box.account_id)
    actions = [e.action for e in events]
    assert {"login.success", "file.upload", "file.download", "file.delete"} <= set(actions)
    download = next(e for e in events if e.action == "file.download")
    assert download.detail["name"] == "receipt_orders.csv.txt"
    assert download.detail["protocol"] == "sftp"
    assert download.detail["address"] == "127.0.0.1"
