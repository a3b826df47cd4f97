"""A Dropyard node behind a real HAProxy, as docs/deploy.md sets one up.

The node runs with proxy_protocol on and trusts 127.0.0.1 (where HAProxy connects from);
HAProxy runs deploy/haproxy.cfg as shipped, its environment pointing it at the node and
at free ports on 127.0.0.3 (the "public" address). Clients connect from 127.0.0.2 and
others, so the address a node records proves where it came from. One node and one
balancer per test session: the tests that use them share an xdist group.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import RunningServer, served

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
LB = "127.0.0.3"  # where HAProxy listens
NODE = "127.0.0.1"  # where the node listens, and HAProxy connects from
CLIENT = "127.0.0.2"  # where the tests' clients connect from
PROXY_TIMEOUT = 3.0


def unavailable(why: str) -> None:
    """Tests that need a system binary fail under CI=true and are skipped elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def need(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        unavailable(f"{binary} is missing (scripts/system-deps.sh installs it)")
    return str(found)


def _free(port: int, *hosts: str) -> bool:
    for host in hosts:
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def free_ports(count: int, *hosts: str) -> list[int]:
    """`count` consecutive ports free on every host, below the kernel's ephemeral range
    (where ports taken with port 0 come from), so that nothing else picks them meanwhile."""
    for _ in range(200):
        first = random.randrange(20000, 32000 - count)
        ports = list(range(first, first + count))
        if all(_free(port, *hosts) for port in ports):
            return ports
    raise RuntimeError("no free ports")


@dataclass(frozen=True)
class Balancer:
    """HAProxy's public ports on `LB`."""

    sftp: int
    ftp: int
    smtp: int
    https: int
    http: int
    passive: range
    log_path: Path
    stats_socket: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin(self, command: str) -> str:
        """A command on HAProxy's stats socket, and its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.stats_socket))
            sock.sendall(command.encode() + b"\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return answer.decode()


def certificate_pem(directory: Path) -> Path:
    """A self-signed certificate and its key in one PEM, as HAProxy's `crt` wants."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dropyard.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = directory / "lb.pem"
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def haproxy_env(
    *, nodes: list[str], passive: list[str], cert: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment deploy/haproxy.cfg reads, for `nodes` with their passive ranges."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    env["DROPYARD_LB_CERT"] = str(cert)
    for number, (address, ports) in enumerate(zip(nodes, passive, strict=True), start=1):
        env[f"DROPYARD_NODE{number}"] = address
        env[f"DROPYARD_NODE{number}_PASSIVE"] = ports
    env.update(extra or {})
    return env


def _wait_for(host: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"haproxy did not listen on {host}:{port}:\n{log.read_text()}")


@pytest.fixture(scope="session")
def passive_ports() -> range:
    # Free on the node's address and the balancer's: HAProxy forwards each to the same port.
    ports = free_ports(6, NODE, LB)
    return range(ports[0], ports[-1] + 1)


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory, passive_ports: range) -> Iterator[RunningServer]:
    """`dropyard serve` as a node behind the balancer (SQLite: the balancer is the point)."""
    data_dir = tmp_path_factory.mktemp("lb-node")
    config = data_dir / "dropyard.toml"
    config.write_text(
        "proxy_protocol = true\n"
        f'proxy_trusted = ["{NODE}/32"]\n'
        f"proxy_timeout_seconds = {PROXY_TIMEOUT}\n"
        f'ftp_passive_ports = "{passive_ports[0]}-{passive_ports[-1]}"\n'
        f'ftp_masquerade_address = "{LB}"\n'
        "sftp_max_sessions_per_address = 3\n"
        "ftp_max_connections_per_address = 3\n"
    )
    env = {"DROPYARD_CONFIG": str(config), "DROPYARD_BAN_AFTER_FAILURES": "5"}
    with served("sqlite", data_dir, name="dropyard_lb", extra_env=env) as running:
        yield running


@pytest.fixture(scope="session")
def balancer(
    node: RunningServer, passive_ports: range, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Balancer]:
    haproxy = need("haproxy")
    work = tmp_path_factory.mktemp("haproxy")
    sftp, ftp, smtp, https, http = free_ports(5, LB)
    env = haproxy_env(
        nodes=[NODE],
        passive=[f"{passive_ports[0]}-{passive_ports[-1]}"],
        cert=certificate_pem(work),
        extra={
            "DROPYARD_LB_ADDR": LB,
            "DROPYARD_LB_SFTP_PORT": str(sftp),
            "DROPYARD_LB_FTP_PORT": str(ftp),
            "DROPYARD_LB_SMTP_PORT": str(smtp),
            "DROPYARD_LB_HTTPS_PORT": str(https),
            "DROPYARD_LB_HTTP_PORT": str(http),
            "DROPYARD_NODE_SFTP_PORT": str(node.ports["sftp"]),
            "DROPYARD_NODE_FTP_PORT": str(node.ports["ftp"]),
            "DROPYARD_NODE_SMTP_PORT": str(node.ports["smtp"]),
            "DROPYARD_NODE_WEB_PORT": str(node.ports["web"]),
            "DROPYARD_LB_STATS_SOCKET": str(work / "admin.sock"),
        },
    )
    log_path = work / "haproxy.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [haproxy, "-f", str(DEPLOY / "haproxy.cfg")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        for port in (sftp, ftp, smtp, https):
            _wait_for(LB, port, process, log_path)
        yield Balancer(
            sftp=sftp,
            ftp=ftp,
            smtp=smtp,
            https=https,
            http=http,
            passive=passive_ports,
            log_path=log_path,
            stats_socket=work / "admin.sock",
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
