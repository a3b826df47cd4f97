"""Real `dropyard serve` nodes on one database: what partners see is the same on every
node (SSH host key, FTPS and SMTP certificate), an upgraded single node keeps its keys,
the operator's own keys win, a node with another master key does not start, and the
embedded default runs the scheduler (its sweep) in-process."""

from __future__ import annotations

import base64
import ftplib
import hashlib
import json
import os
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select
from tests.cluster.conftest import MASTER_KEY, OTHER_MASTER_KEY
from tests.conftest import PG_ADMIN_URL, _postgres_available, _worker
from tests.support import (
    OPERATOR,
    RunningServer,
    drop_box,
    drop_postgres,
    fresh_postgres,
    start_server,
)

from dropyard.app import build
from dropyard.files.models import File
from dropyard.gateway.sftp import load_host_keys
from dropyard.gateway.tls import ensure_certificate
from dropyard.settings import ROLES, Settings

NODE_ENV = {"DROPYARD_MASTER_KEY": MASTER_KEY}
FRONT_ENDS = "sftp,ftp,smtp"


@dataclass
class Cluster:
    database_url: str
    base: Path
    a: RunningServer
    b: RunningServer
    old_a_keys: set[str]  # "type base64" of node A's host keys before the upgrade
    old_b_keys: set[str]
    old_a_cert: str  # sha256 of node A's certificate before the upgrade


def _old_files(keys_dir: Path) -> tuple[set[str], str]:
    """What an earlier version left in a node's data dir: its own keys and certificate."""
    keys = load_host_keys(keys_dir)  # without the database: files, as before
    cert, _ = ensure_certificate(keys_dir, hostname="127.0.0.1")
    return {_openssh(pair.public_data) for pair in keys}, _pem_sha256(cert.read_bytes())


def _old_ed25519(keys_dir: Path) -> set[str]:
    keys_dir.mkdir(parents=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    (keys_dir / "ssh_host_ed25519_key").write_bytes(key.export_private_key())
    (keys_dir / "ssh_host_ed25519_key").chmod(0o600)
    return {_openssh(key.public_data)}


def _openssh(public_data: bytes) -> str:
    """An SSH public key blob as known_hosts writes it: "type base64"."""
    kind = public_data[4 : 4 + int.from_bytes(public_data[:4], "big")].decode()
    return f"{kind} {base64.b64encode(public_data).decode()}"


def _pem_sha256(pem: bytes) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp(f"cluster-{request.param}")
    pg_name = f"dropyard_cluster_{_worker()}"
    if request.param == "postgres":
        if not _postgres_available():
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not reachable; CI must run these tests")
            pytest.skip("PostgreSQL is not reachable")
        url = fresh_postgres(PG_ADMIN_URL, pg_name)
    else:
        url = f"sqlite:///{base / 'shared' / 'dropyard.db'}"
    old_a_keys, old_a_cert = _old_files(base / "a" / "keys")
    old_b_keys = _old_ed25519(base / "b" / "keys")
    ensure_certificate(base / "b" / "keys", hostname="127.0.0.1")
    # One after the other: the first node creates the schema.
    a = start_server(base / "a", url, roles=FRONT_ENDS, extra_env=NODE_ENV)
    try:
        b = start_server(base / "b", url, roles=FRONT_ENDS, extra_env=NODE_ENV)
        try:
            yield Cluster(url, base, a, b, old_a_keys, old_b_keys, old_a_cert)
        finally:
            b.stop()
    finally:
        a.stop()
        if request.param == "postgres":
            drop_postgres(PG_ADMIN_URL, pg_name)


def keyscan(port: int) -> set[str]:
    """The host keys a server presents, as `ssh-keyscan` (OpenSSH) sees them."""
    done = subprocess.run(
        ["ssh-keyscan", "-T", "10", "-p", str(port), "-t", "ed25519,rsa", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    found = set()
    for line in done.stdout.splitlines():
        if line and not line.startswith("#"):
            _host, kind, blob = line.split()[:3]
            found.add(f"{kind} {blob}")
    return found


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # self-signed: compared by fingerprint instead
    return context


def ftps_certificate(port: int) -> str:
    client = ftplib.FTP_TLS(context=_unverified(), timeout=20)
    try:
        client.connect("127.0.0.1", port)
        client.auth()
        der = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    finally:
        client.close()
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def smtp_certificate(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.starttls(context=_unverified())
        der = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_every_node_presents_the_upgraded_nodes_old_host_keys(cluster: Cluster) -> None:
    on_a = keyscan(cluster.a.ports["sftp"])
    on_b = keyscan(cluster.b.ports["sftp"])
    assert len(on_a) == 2
    assert on_a == on_b == cluster.old_a_keys  # partners' known_hosts stay valid
    assert not on_b & cluster.old_b_keys  # node B's own old keys are set aside


def test_every_node_presents_the_same_certificate_on_ftps_and_smtp(cluster: Cluster) -> None:
    seen = {
        ftps_certificate(cluster.a.ports["ftp"]),
        smtp_certificate(cluster.a.ports["smtp"]),
        ftps_certificate(cluster.b.ports["ftp"]),
        smtp_certificate(cluster.b.ports["smtp"]),
    }
    assert seen == {cluster.old_a_cert}


def test_a_node_with_another_master_key_refuses_to_start(cluster: Cluster) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    env.update(
        {
            "DROPYARD_DATA_DIR": str(cluster.base / "stranger"),
            "DROPYARD_DATABASE_URL": cluster.database_url,
            "DROPYARD_MASTER_KEY": OTHER_MASTER_KEY,
            "DROPYARD_SFTP_PORT": "0",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "dropyard", "serve", "--roles", "sftp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "sealed under another master key" in done.stderr
    assert "same master key" in done.stderr
    assert "Traceback" not in done.stderr
    assert "listening" not in done.stdout
    assert not (cluster.base / "stranger" / "keys" / "ssh_host_ed25519_key").exists()


def _serve(
    data_dir: Path, env: dict[str, str], roles: str
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """`dropyard serve` with settings a test's Settings cannot take as strings (lists)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    full.update(
        {
            "DROPYARD_DATA_DIR": str(data_dir),
            **{f"DROPYARD_{p.upper()}_PORT": "0" for p in ("web", "sftp", "ftp", "smtp")},
            "DROPYARD_PUBLIC_HOST": "127.0.0.1",
            **env,
        }
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    ports_file = data_dir / "run" / "ports.json"
    with open(data_dir / "serve.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dropyard", "serve", "--roles", roles],
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 60
    while not ports_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError((data_dir / "serve.log").read_text())
        time.sleep(0.1)
    return process, json.loads(ports_file.read_text())


def test_the_operators_own_host_key_and_certificate_win(tmp_path: Path) -> None:
    key_file = tmp_path / "host_ed25519"
    key_file.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    key_file.chmod(0o600)
    cert, key = ensure_certificate(tmp_path / "operator", hostname="files.example.com")
    process, ports = _serve(
        tmp_path / "data",
        {
            "DROPYARD_SSH_HOST_KEY_FILES": json.dumps([str(key_file)]),
            "DROPYARD_TLS_CERT_FILE": str(cert),
            "DROPYARD_TLS_KEY_FILE": str(key),
        },
        FRONT_ENDS,
    )
    try:
        public = asyncssh.read_private_key(str(key_file)).public_data
        assert keyscan(ports["sftp"]) == {_openssh(public)}
        expected = _pem_sha256(cert.read_bytes())
        assert smtp_certificate(ports["smtp"]) == expected
        assert ftps_certificate(ports["ftp"]) == expected
    finally:
        process.terminate()
        process.wait(30)


def test_an_unreadable_operator_host_key_stops_the_node_with_its_name(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    missing = tmp_path / "no-such-key"
    env.update(
        {
            "DROPYARD_DATA_DIR": str(tmp_path / "data"),
            "DROPYARD_SFTP_PORT": "0",
            "DROPYARD_SSH_HOST_KEY_FILES": json.dumps([str(missing)]),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "dropyard", "serve", "--roles", "sftp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert f"the SSH host key file {missing} cannot be read" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "run" / "ports.json").exists()


def test_the_embedded_default_sweeps_up_a_file_whose_message_was_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'dropyard.db'}"
    server = start_server(
        tmp_path / "data",
        url,
        roles=",".join(ROLES),  # what `dropyard serve` runs by default
        extra_env={"DROPYARD_SWEEP_SECONDS": "0.5", "DROPYARD_SCHEDULER_LOOP_SECONDS": "1"},
    )
    # Another process commits a file: its queue message goes to a queue nobody reads.
    elsewhere = build(
        Settings(
            data_dir=tmp_path / "data",
            database_url=url,
            public_host="127.0.0.1",
            queue_name="nobody-reads-this",
        )
    )
    try:
        box = drop_box(server.app)
        spool = elsewhere.files.open_spool()
        spool.write(b"not,a,conversions,file\n1,2,3,4\n")
        view = elsewhere.files.commit(
            spool, connection_id=box.connection_id, name="lost.csv", source="sftp", actor=OPERATOR
        )
        deadline = time.monotonic() + 60
        while True:
            with server.app.sessions() as session:
                state = session.scalar(select(File.state).where(File.id == view.id))
            if state not in ("received", "processing"):
                break
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert state == "failed"  # processed: its columns are wrong
        assert "is now the scheduler leader" in server.log()
    finally:
        elsewhere.close()
        server.stop()
