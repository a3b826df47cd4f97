"""The node's listeners with PROXY protocol on, talked to directly the way a balancer
would: v1 and v2 headers by hand, LOCAL health checks, garbled and late headers, and the
FTP data connection's check of the client's address."""

from __future__ import annotations

import ftplib
import io
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from email.message import EmailMessage

import paramiko
import pytest

from tests.deploy.clients import (
    CSV,
    connect_with_header,
    files_of,
    ftp_connections_with,
    logged,
    mail_box,
    received,
    tls_client,
)
from tests.deploy.conftest import NODE, PROXY_TIMEOUT
from tests.deploy.headers import SIGNATURE, v1, v2, v2_local
from tests.support import DropBox, RunningServer, drop_box

pytestmark = pytest.mark.xdist_group("haproxy")


@pytest.fixture
def box(node: RunningServer) -> DropBox:
    return drop_box(node.app)


def _logins(node: RunningServer, account_id: int | None) -> list[tuple[str, str]]:
    return [
        (e.action, str(e.detail.get("address")))
        for e in node.app.audit.recent(account_id=account_id, limit=500)
        if e.action.startswith("login.")
    ]


# -- SFTP -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "client"),
    [
        (v1("192.0.2.10"), "192.0.2.10"),
        (v2("192.0.2.11"), "192.0.2.11"),
        (v2("2001:db8::12", "::1"), "2001:db8::12"),
        (v2_local(), NODE),  # the balancer itself: its own address stands
    ],
    ids=["v1", "v2", "v2-ipv6", "v2-local"],
)
def test_sftp_login_records_the_address_the_header_names(
    node: RunningServer, box: DropBox, header: bytes, client: str
) -> None:
    sock = connect_with_header(NODE, node.ports["sftp"], header)
    transport = paramiko.Transport(sock)
    try:
        transport.connect(username=box.login, password=box.password)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        # confirm=False: a committed upload moves on to the inbox at once.
        sftp.putfo(io.BytesIO(CSV), f"/{box.folder}/orders.csv", confirm=False)
    finally:
        transport.close()
    assert ("login.success", client) in _logins(node, box.account_id)
    [row] = files_of(node, box.connection_id)
    assert row.source_address == client


@pytest.mark.parametrize(
    "opening",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 1 22\n",
        b"PROXY TCP4 192.0.2.7 10.0.0.1 99999 22\r\n",
        SIGNATURE + b"\x21\x31\x00\x00",
        b"PROXY " + b"9" * 120,
    ],
    ids=["no-header", "lf-only", "bad-port", "unix-family", "too-long"],
)
def test_sftp_closes_a_connection_with_a_garbled_header(
    node: RunningServer, opening: bytes
) -> None:
    with connect_with_header(NODE, node.ports["sftp"], opening) as sock:
        time.sleep(0.3)
        data, closed = received(sock)
    assert closed
    assert b"SSH-2.0" not in data


def test_sftp_closes_a_connection_whose_header_is_late(node: RunningServer) -> None:
    with connect_with_header(NODE, node.ports["sftp"], b"PROXY TCP4 192.0.2.7") as sock:
        started = time.monotonic()
        sock.settimeout(PROXY_TIMEOUT + 5)
        assert sock.recv(100) == b""
        waited = time.monotonic() - started
    assert PROXY_TIMEOUT - 0.5 < waited < PROXY_TIMEOUT + 3
    assert logged(node, f"no complete PROXY header within {PROXY_TIMEOUT:g} s")


# -- SMTP -------------------------------------------------------------------------------


class _HeaderSMTP(smtplib.SMTP):
    """smtplib opening its connection with a PROXY header."""

    def __init__(self, header: bytes, *args: object, **kwargs: object) -> None:
        self._header = header
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return connect_with_header(host, port, self._header, timeout=timeout)


def _message(to: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "feeds@partner.example"
    mail["To"] = to
    mail["Subject"] = "conversions"
    mail.set_content("attached")
    mail.add_attachment(CSV, maintype="text", subtype="csv", filename="orders.csv")
    return mail


@pytest.mark.parametrize(
    ("header", "client"),
    [(v2("198.51.100.20", dport=25), "198.51.100.20"), (v2_local(), NODE)],
    ids=["v2", "v2-local"],
)
@pytest.mark.parametrize("starttls", [False, True], ids=["plain", "starttls"])
def test_smtp_records_the_address_the_header_names(
    node: RunningServer, header: bytes, client: str, starttls: bool
) -> None:
    address, connection_id, _ = mail_box(node)
    with _HeaderSMTP(header, NODE, node.ports["smtp"], timeout=20) as smtp:
        if starttls:
            smtp.starttls(context=tls_client())
        smtp.send_message(_message(address))
    [row] = files_of(node, connection_id)
    assert row.source_address == client


@pytest.mark.parametrize(
    "opening",
    [
        b"EHLO client\r\n",
        SIGNATURE + b"\x21\x31\x00\x00",
        SIGNATURE + b"\x21\x12\x00\x0c" + bytes(12),
    ],
    ids=["no-header", "unix-family", "udp"],
)
def test_smtp_never_greets_a_connection_with_a_garbled_header(
    node: RunningServer, opening: bytes
) -> None:
    with connect_with_header(NODE, node.ports["smtp"], opening) as sock:
        time.sleep(0.3)
        data, closed = received(sock)
    assert closed
    assert not data.startswith(b"220")


# -- FTP: the control connection and its data connections -------------------------------

REAL_CLIENT = "127.0.0.9"  # what the control connection's header says the client is


@pytest.fixture
def ftp_box(node: RunningServer) -> DropBox:
    return drop_box(node.app, method="ftp")


@pytest.fixture
def control(node: RunningServer, ftp_box: DropBox) -> Iterator[ftplib.FTP_TLS]:
    """An FTPS session whose control connection came "through a balancer" for REAL_CLIENT."""
    client = ftplib.FTP_TLS(context=tls_client(), timeout=20)
    with ftp_connections_with(lambda: v2(REAL_CLIENT, dport=21)):
        client.connect(NODE, node.ports["ftp"])
    client.login(ftp_box.login, ftp_box.password)
    client.prot_p()
    client.cwd(f"/{ftp_box.folder}")
    yield client
    client.close()


def test_ftp_login_records_the_address_the_header_names(
    node: RunningServer, ftp_box: DropBox, control: ftplib.FTP_TLS
) -> None:
    assert ("login.success", REAL_CLIENT) in _logins(node, ftp_box.account_id)


# A refused data connection fails the transfer: with a 425, or, when the server took the
# command before it saw the connection, with the data connection cut.
TRANSFER_FAILED = (ftplib.error_temp, ConnectionError, ssl.SSLError, EOFError, TimeoutError)


def test_ftp_data_through_the_balancer_must_name_the_same_client(
    node: RunningServer, control: ftplib.FTP_TLS
) -> None:
    with ftp_connections_with(lambda: v2(REAL_CLIENT)):
        assert control.storbinary("STOR orders.csv", io.BytesIO(CSV)).startswith("226")
    with ftp_connections_with(lambda: v2("127.0.0.8")), pytest.raises(TRANSFER_FAILED):
        control.nlst()
    assert logged(node, "Rejected data connection from foreign address 127.0.0.8")


def test_ftp_data_through_the_balancer_without_a_header_is_refused(
    node: RunningServer, control: ftplib.FTP_TLS
) -> None:
    with ftp_connections_with(lambda: b"\x16\x03\x01\x00\x05hello"), pytest.raises(TRANSFER_FAILED):
        control.nlst()
    assert logged(node, "closing FTP data connection from 127.0.0.1: the connection did not")


def test_ftp_data_straight_from_the_client_is_accepted(control: ftplib.FTP_TLS) -> None:
    # Nodes that announce a public address of their own take data connections directly.
    control.source_address = (REAL_CLIENT, 0)
    assert control.nlst() == []
    control.source_address = ("127.0.0.8", 0)
    with pytest.raises(TRANSFER_FAILED):
        control.nlst()


def test_ftp_control_without_a_header_is_never_greeted(node: RunningServer) -> None:
    client = ftplib.FTP(timeout=PROXY_TIMEOUT + 5)
    with pytest.raises((EOFError, ConnectionError, ftplib.Error)):
        client.connect(NODE, node.ports["ftp"])  # from a trusted address, but no header
    client.close()
