"""A node behind a real HAProxy running deploy/haproxy.cfg: clients connect from 127.0.0.2
(and other addresses) to the balancer on 127.0.0.3, the balancer to the node from
127.0.0.1, and what the node records, bans and caps is the client's own address."""

from __future__ import annotations

import ftplib
import hashlib
import io
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.clients import CSV, files_of, logged, mail_box, received, sftp, swaks, tls_client
from tests.deploy.conftest import CLIENT, LB, NODE, Balancer
from tests.support import RunningServer, drop_box

pytestmark = pytest.mark.xdist_group("haproxy")


def _lines_from(log: str, address: str, frontend: str) -> list[str]:
    return [
        line for line in log.splitlines() if line.startswith(f"{address}:") and frontend in line
    ]


def _wait_for_log(balancer: Balancer, address: str, frontend: str) -> list[str]:
    # HAProxy logs a TCP session when it ends.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = _lines_from(balancer.log(), address, frontend)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"haproxy logged no {frontend} session from {address}:\n{balancer.log()}")


# -- SFTP -------------------------------------------------------------------------------


def test_sftp_upload_through_haproxy_records_the_clients_address(
    node: RunningServer, balancer: Balancer, tmp_path: Path
) -> None:
    box = drop_box(node.app)
    (tmp_path / "orders.csv").write_bytes(CSV)
    result = sftp(
        LB,
        balancer.sftp,
        box.login,
        box.password,
        f"put orders.csv /{box.folder}/orders.csv\n",
        bind=CLIENT,
        cwd=tmp_path,
    )
    assert result.code == 0, result.err
    [row] = files_of(node, box.connection_id)
    assert (row.name, row.sha256) == ("orders.csv", hashlib.sha256(CSV).hexdigest())
    assert row.source_address == CLIENT
    events = node.app.audit.recent(account_id=box.account_id)
    login = next(e for e in events if e.action == "login.success")
    assert (login.source, login.detail["address"]) == (CLIENT, CLIENT)
    upload = next(e for e in events if e.action == "file.upload")
    assert upload.detail["address"] == CLIENT
    assert {e.source for e in events if e.action.startswith(("login.", "file."))} == {CLIENT}
    # It did go through the balancer: HAProxy saw the client, the node saw HAProxy.
    assert _wait_for_log(balancer, CLIENT, "sftp sftp_nodes/node1")


def test_failed_logins_through_haproxy_ban_the_client_not_the_balancer(
    node: RunningServer, balancer: Balancer, tmp_path: Path
) -> None:
    box = drop_box(node.app)
    attacker, bystander = "127.0.0.5", "127.0.0.6"
    for _ in range(5):
        wrong = sftp(LB, balancer.sftp, box.login, "wrong", "ls\n", bind=attacker, cwd=tmp_path)
        assert wrong.code != 0
    banned = sftp(LB, balancer.sftp, box.login, box.password, "ls\n", bind=attacker, cwd=tmp_path)
    assert banned.code != 0
    # Everyone else still gets in through the same balancer.
    fine = sftp(LB, balancer.sftp, box.login, box.password, "ls\n", bind=bystander, cwd=tmp_path)
    assert fine.code == 0, fine.err
    failures = [
        e for e in node.app.audit.recent(account_id=None, limit=500) if e.action == "login.failure"
    ]
    mine = [e for e in failures if e.detail.get("address") == attacker]
    assert len(mine) >= 5
    assert any(e.detail.get("banned") for e in mine)
    assert not [e for e in failures if e.detail.get("address") == NODE]


def test_sessions_per_address_count_the_client_not_the_balancer(
    node: RunningServer, balancer: Balancer
) -> None:
    cap = 3  # sftp_max_sessions_per_address on the test node
    crowd = [
        socket.create_connection((LB, balancer.sftp), timeout=5, source_address=("127.0.0.13", 0))
        for _ in range(cap + 1)
    ]
    try:
        # The balancer's header reads race, so any one of them may be the one too many:
        # that one is disconnected at once, the others wait for the client's version.
        time.sleep(1)
        outcomes = [received(sock) for sock in crowd]
        open_ = [data for data, closed in outcomes if not closed]
        gone = [data for data, closed in outcomes if closed]
        assert len(open_) == cap and all(d.startswith(b"SSH-2.0-Dropyard") for d in open_)
        assert len(gone) == 1 and b"Disconnected" in gone[0], gone
        # Another client behind the same balancer is not affected.
        with socket.create_connection(
            (LB, balancer.sftp), timeout=5, source_address=("127.0.0.14", 0)
        ) as other:
            assert other.recv(100).startswith(b"SSH-2.0-")
    finally:
        for sock in crowd:
            sock.close()


def test_a_direct_connection_to_the_node_is_refused(
    node: RunningServer, balancer: Balancer, tmp_path: Path
) -> None:
    box = drop_box(node.app)
    # From an address outside proxy_trusted: hung up on at once.
    outside = sftp(
        NODE, node.ports["sftp"], box.login, box.password, "ls\n", bind=CLIENT, cwd=tmp_path
    )
    assert outside.code != 0
    assert "closed" in outside.err.lower(), outside.err
    # From the balancer's own address but without a header: closed as well.
    inside = sftp(
        NODE, node.ports["sftp"], box.login, box.password, "ls\n", bind=NODE, cwd=tmp_path
    )
    assert inside.code != 0
    assert logged(node, f"refusing SFTP connection from {CLIENT}: not a trusted load balancer")
    assert logged(node, f"closing SFTP connection from {NODE}: the connection did not start")
    events = node.app.audit.recent(account_id=box.account_id)
    assert not [e for e in events if e.action.startswith("login.")]


# -- SMTP (PROXY v1 in deploy/haproxy.cfg) ----------------------------------------------


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_mail_through_haproxy_records_the_senders_address(
    node: RunningServer, balancer: Balancer, tmp_path: Path, tls: bool
) -> None:
    address, connection_id, account_id = mail_box(node)
    (tmp_path / "orders.csv").write_bytes(CSV)
    result = swaks(
        LB,
        balancer.smtp,
        "--from",
        "feeds@partner.example",
        "--to",
        address,
        "--attach-type",
        "text/csv",
        "--attach-name",
        "orders.csv",
        "--attach",
        f"@{tmp_path / 'orders.csv'}",
        *(["--tls"] if tls else []),
        bind=CLIENT,
    )
    assert result.code == 0, result.out + result.err
    assert "250 2.0.0 accepted 1 file(s)" in result.out
    [row] = files_of(node, connection_id)
    assert row.source_address == CLIENT
    received = [
        e for e in node.app.audit.recent(account_id=account_id) if e.action == "email.receive"
    ]
    assert [e.source for e in received] == [CLIENT]
    assert _wait_for_log(balancer, CLIENT, "smtp smtp_nodes/node1")


def test_smtp_straight_to_the_node_is_refused(node: RunningServer, balancer: Balancer) -> None:
    result = swaks(NODE, node.ports["smtp"], "--quit-after", "CONNECT", bind=CLIENT)
    assert result.code != 0
    assert "220" not in result.out


# -- FTP(S): control and passive data through the balancer ------------------------------


def test_ftps_upload_through_haproxy_uses_the_balancer_for_data_too(
    node: RunningServer, balancer: Balancer
) -> None:
    box = drop_box(node.app, method="ftp")
    client = ftplib.FTP_TLS(context=tls_client(), timeout=20)
    client.connect(LB, balancer.ftp, source_address=(CLIENT, 0))
    try:
        client.login(box.login, box.password)
        client.prot_p()
        client.cwd(f"/{box.folder}")
        passive = client.sendcmd("PASV")
        host, port = ftplib.parse227(passive)
        # The node announces the balancer's address and a port of its own passive range.
        assert host == LB
        assert port in balancer.passive
        reply = client.storbinary("STOR orders.csv", io.BytesIO(CSV))
        assert reply.startswith("226"), reply
        assert "receipt_orders.csv.txt" in client.nlst()
    finally:
        client.close()
    [row] = files_of(node, box.connection_id)
    assert row.source_address == CLIENT
    login = next(
        e for e in node.app.audit.recent(account_id=box.account_id) if e.action == "login.success"
    )
    assert login.detail["address"] == CLIENT
    assert _wait_for_log(balancer, CLIENT, "ftp_passive_node1 ftp_passive_node1/node1")


def test_ftp_connections_per_address_count_the_client(
    node: RunningServer, balancer: Balancer
) -> None:
    cap = 3  # ftp_max_connections_per_address on the test node
    clients = []
    try:
        for _ in range(cap):
            client = ftplib.FTP(timeout=10)
            assert client.connect(LB, balancer.ftp, source_address=("127.0.0.15", 0)).startswith(
                "220"
            )
            clients.append(client)
        extra = ftplib.FTP(timeout=10)
        with pytest.raises(ftplib.error_temp, match="421 Too many connections from the same IP"):
            extra.connect(LB, balancer.ftp, source_address=("127.0.0.15", 0))
        extra.close()
        other = ftplib.FTP(timeout=10)
        assert other.connect(LB, balancer.ftp, source_address=("127.0.0.16", 0)).startswith("220")
        other.close()
    finally:
        for client in clients:
            client.close()


# -- the console through the balancer's HTTPS frontend ----------------------------------


def _sign_in(client: httpx.Client, base: str, password: str) -> int:
    page = client.get(f"{base}/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, page.text
    response = client.post(
        f"{base}/signin",
        data={"email": "nobody@example.com", "password": password, "csrf_token": token[1]},
    )
    return response.status_code


def test_console_sign_in_failures_through_haproxy_ban_the_client(
    node: RunningServer, balancer: Balancer
) -> None:
    base = f"https://{LB}:{balancer.https}"

    def client(address: str) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=address, verify=tls_client())
        return httpx.Client(transport=transport, timeout=20)

    with client("127.0.0.17") as attacker:
        codes = [_sign_in(attacker, base, "wrong") for _ in range(5)]
        assert codes[:4] == [401] * 4
        assert codes[4] == 429
    with client("127.0.0.18") as bystander:
        assert _sign_in(bystander, base, "wrong") == 401
    with client("127.0.0.17") as again:
        assert again.get(f"{base}/readyz").status_code == 200
        # A client cannot pose as someone else with its own X-Forwarded-For.
        page = again.get(f"{base}/signin", headers={"X-Forwarded-For": "127.0.0.19"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        posed = again.post(
            f"{base}/signin",
            data={"email": "nobody@example.com", "password": "x", "csrf_token": token[1]},
            headers={"X-Forwarded-For": "127.0.0.19"},
        )
        assert posed.status_code == 429


def test_plain_http_is_sent_to_https(balancer: Balancer) -> None:
    response = httpx.get(f"http://{LB}:{balancer.http}/signin", timeout=10)
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")


def test_haproxy_health_checks_find_the_node_ready(balancer: Balancer) -> None:
    """Every backend checks the node's /readyz on its web port (L7OK: HTTP 200)."""
    backends = {"sftp_nodes", "ftp_nodes", "smtp_nodes", "web_nodes"}
    passed: set[str] = set()
    last: dict[str, str] = {}
    deadline = time.monotonic() + 45
    while not backends <= passed:
        assert time.monotonic() < deadline, last
        lines = balancer.admin("show stat").splitlines()
        fields = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(fields, line.split(","), strict=False)) for line in lines[1:] if line]
        last = {r["pxname"]: r["check_status"] for r in rows if r.get("svname") == "node1"}
        passed |= {name for name, status in last.items() if status == "L7OK"}
        time.sleep(0.5)


def test_metrics_are_not_served_through_the_balancer(balancer: Balancer) -> None:
    transport = httpx.HTTPTransport(verify=tls_client())
    with httpx.Client(transport=transport, timeout=10) as client:
        assert client.get(f"https://{LB}:{balancer.https}/metrics").status_code == 404
