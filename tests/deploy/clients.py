"""Real clients for the balancer tests, each bound to a chosen source address: OpenSSH
`sftp`, swaks, ftplib; and connections that open with a hand-made PROXY header, the way
a balancer would, for talking to a node directly."""

from __future__ import annotations

import contextlib
import ftplib
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dropyard.files.models import File
from tests.support import OPERATOR, RunningServer, unique, walk_wizard

CSV = (
    b"CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CurrencyCode,Amount\n"
    b"1001,5001,2026-11-20T10:15:00Z,ORD-1,clk-1,USD,59.90\n"
)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def sftp(
    host: str, port: int, login: str, password: str, commands: str, *, bind: str, cwd: Path
) -> Result:
    """OpenSSH sftp in batch mode with a password (sshpass), from `bind`."""
    batch = cwd / "batch.txt"
    batch.write_text(commands)
    done = subprocess.run(
        [
            "sshpass",
            "-p",
            password,
            "sftp",
            "-o",
            "BatchMode=no",
            "-b",
            str(batch),
            "-P",
            str(port),
            "-o",
            f"BindAddress={bind}",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            f"{login}@{host}",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def swaks(host: str, port: int, *args: str, bind: str) -> Result:
    done = subprocess.run(
        [
            "swaks",
            "--server",
            f"{host}:{port}",
            "--local-interface",
            bind,
            "--timeout",
            "20",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def tls_client() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test servers' certificates are self-signed
    return context


def files_of(server: RunningServer, connection_id: int) -> list[File]:
    with server.app.sessions() as session:
        query = select(File).where(File.connection_id == connection_id).order_by(File.id)
        return list(session.scalars(query))


def logged(server: RunningServer, text: str, *, within: float = 5) -> bool:
    """Whether the server's log says `text`, waiting a little for it to be written."""
    deadline = time.monotonic() + within
    while text not in server.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def connect_with_header(
    host: str, port: int, header: bytes, *, bind: str = "127.0.0.1", timeout: float = 10
) -> socket.socket:
    """A TCP connection that opens with `header`, as a balancer's would."""
    sock = socket.create_connection((host, port), timeout=timeout, source_address=(bind, 0))
    sock.sendall(header)
    return sock


@contextlib.contextmanager
def ftp_connections_with(header: Callable[[], bytes]) -> Iterator[None]:
    """Every connection ftplib opens meanwhile (control and data) starts with `header()`."""
    original = socket.create_connection

    def opening(address: Any, timeout: Any = None, source_address: Any = None) -> socket.socket:
        sock = original(address, timeout, source_address=("127.0.0.1", 0))
        sock.sendall(header())
        return sock

    ftplib.socket.create_connection = opening  # type: ignore[attr-defined]
    try:
        yield
    finally:
        ftplib.socket.create_connection = original  # type: ignore[attr-defined]


def received(sock: socket.socket) -> tuple[bytes, bool]:
    """What the server has sent so far, and whether it has closed the connection."""
    sock.settimeout(0.3)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        pass  # closed with our bytes unread
    return data, True


def mail_box(node: RunningServer) -> tuple[str, int, int]:
    """An email drop box for *.csv: its address, connection id and account id."""
    app = node.app
    account_id = app.accounts.create_account(OPERATOR, name=unique("Brand"), kind="brand").id
    created = walk_wizard(
        app,
        OPERATOR,
        account=account_id,
        name=unique("Mail box"),
        direction="inbound",
        data_type="conversions",
        method="email",
        methodology="push",
        details={"file_pattern": "*.csv"},
        credential={},
    )
    assert created.connection.email_address
    return created.connection.email_address, created.connection.id, account_id
