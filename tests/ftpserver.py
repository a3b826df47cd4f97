"""FTP(S) servers on loopback for tests: pyftpdlib in a subprocess, started once per test
session (per xdist worker), each variant on its own free port.

Variants:
- `ftps`: explicit FTPS (AUTH TLS) with the `main` certificate; plain FTP logins work too.
  Protected data connections must resume the control connection's TLS session.
- `other_cert`: the same with another certificate (a partner that changed its certificate).
- `plain_only`: no TLS at all.
- `legacy`: FTPS whose PASV reply names 203.0.113.9 (the PASV trap), without EPSV and
  MLSD, and that never renames over an existing file.
- `throttled`: plain FTP whose data connections trickle (about 1 KB/s, in bursts).

Every command a variant receives is logged (the verb only), so a test can prove that a
client never sent USER/PASS. Other test packages use it by importing the fixture:

    from tests.ftpserver import ftp_server  # noqa: F401
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dropyard.remote.base import Endpoint

VARIANTS = ("ftps", "other_cert", "plain_only", "legacy", "throttled")
MASQUERADE = "203.0.113.9"  # TEST-NET-3: nobody answers there
PASSWORD = "s3cret-pass"
THROTTLE_BYTES_PER_SECOND = 1024


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    fingerprint: str  # SHA-256, upper-case hex, colon-separated


def make_certificate(directory: Path, *, hostname: str = "127.0.0.1") -> Certificate:
    """A fresh self-signed certificate (EC P-256) for `hostname`."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(hostname))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Certificate(cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex(":").upper())


@dataclass(frozen=True)
class FtpUser:
    name: str
    home: str  # a folder under the server's root
    perm: str = "elradfmwMT"
    password: str = PASSWORD


# alice may do anything in her home; reader sees the same files but may not write;
# lister reads the `many` folder (filled by the tests that need a huge listing); every
# upload by `full` is answered "552 ... storage" (a server whose disk or quota is full).
DEFAULT_USERS = (
    FtpUser("alice", "alice"),
    FtpUser("reader", "alice", perm="elr"),
    FtpUser("lister", "many", perm="elr"),
    FtpUser("full", "full"),
)


@dataclass
class FtpServer:
    root: Path
    ports: dict[str, int]
    certificates: dict[str, Certificate]
    process: subprocess.Popen[bytes]
    log_dir: Path
    users: dict[str, FtpUser] = field(default_factory=dict)

    def home(self, user: str = "alice") -> Path:
        return self.root / self.users[user].home

    def new_folder(self, user: str = "alice") -> tuple[Path, str]:
        """A fresh folder in `user`'s home: its path on disk and as the server names it."""
        name = f"t-{uuid.uuid4().hex[:12]}"
        path = self.home(user) / name
        path.mkdir(parents=True)
        return path, f"/{name}"

    def fingerprint(self, variant: str = "ftps") -> str:
        return self.certificates["other" if variant == "other_cert" else "main"].fingerprint

    def endpoint(
        self,
        variant: str = "ftps",
        *,
        user: str = "alice",
        folder: str = "/",
        password: str | None = None,
        plain: bool | None = None,
        pin: str | None = None,
    ) -> Endpoint:
        return Endpoint(
            host="127.0.0.1",
            address="127.0.0.1",
            port=self.ports[variant],
            folder=folder,
            username=user,
            password=self.users[user].password if password is None else password,
            pin=pin,
            plain=variant in ("plain_only", "throttled") if plain is None else plain,
        )

    def commands(self, variant: str) -> list[str]:
        """The command verbs `variant` received so far, oldest first."""
        path = self.log_dir / f"commands-{variant}.log"
        return path.read_text().split() if path.exists() else []


def start_ftp_server(workdir: Path, users: Sequence[FtpUser] = DEFAULT_USERS) -> FtpServer:
    """Start the server subprocess; stop it with `stop_ftp_server`."""
    root = workdir / "root"
    for user in users:
        (root / user.home).mkdir(parents=True, exist_ok=True)
    certificates = {
        "main": make_certificate(workdir / "cert-main"),
        "other": make_certificate(workdir / "cert-other"),
    }
    ready = workdir / "ports.json"
    config = {
        "root": str(root),
        "log_dir": str(workdir),
        "ready": str(ready),
        "users": [
            {"name": u.name, "password": u.password, "home": u.home, "perm": u.perm} for u in users
        ],
        "certificates": {k: [str(c.cert), str(c.key)] for k, c in certificates.items()},
    }
    (workdir / "config.json").write_text(json.dumps(config))
    with (workdir / "server.log").open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(workdir / "config.json")],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log = (workdir / "server.log").read_text(errors="replace")
            raise RuntimeError(f"the test FTP server did not start:\n{log[-3000:]}")
        time.sleep(0.05)
    ports = {k: int(v) for k, v in json.loads(ready.read_text()).items()}
    return FtpServer(
        root=root,
        ports=ports,
        certificates=certificates,
        process=process,
        log_dir=workdir,
        users={u.name: u for u in users},
    )


def stop_ftp_server(server: FtpServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    server = start_ftp_server(tmp_path_factory.mktemp("ftpserver"))
    try:
        yield server
    finally:
        stop_ftp_server(server)


# -- the server process ------------------------------------------------------------------


def _serve(config_path: str) -> None:  # pragma: no cover (runs in the subprocess)
    import errno
    import logging

    from OpenSSL import SSL
    from OpenSSL._util import lib as ssl_lib  # pyOpenSSL has no session_reused()
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import (
        FTPHandler,
        ThrottledDTPHandler,
        TLS_DTPHandler,
        TLS_FTPHandler,
    )
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

    logging.basicConfig(level=logging.WARNING)
    config = json.loads(Path(config_path).read_text())
    root, log_dir = Path(config["root"]), Path(config["log_dir"])

    authorizer = DummyAuthorizer()
    for user in config["users"]:
        authorizer.add_user(
            user["name"], user["password"], str(root / user["home"]), perm=user["perm"]
        )

    def tls(name: str) -> SSL.Context:
        cert, key = config["certificates"][name]
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.use_certificate_chain_file(cert)
        context.use_privatekey_file(key)
        context.set_session_id(b"dropyard-tests")
        return context

    def logged(base: Any, variant: str, **attributes: Any) -> type:
        log_path = log_dir / f"commands-{variant}.log"

        def pre_process_command(self: Any, line: str, cmd: str, arg: str) -> None:
            with log_path.open("a") as log:
                log.write(cmd + "\n")
            base.pre_process_command(self, line, cmd, arg)

        def ftp_STOR(self: Any, file: str, mode: str = "w") -> Any:
            if self.username == "full":
                self.respond("552 Requested file action aborted: exceeded storage allocation.")
                return None
            return base.ftp_STOR(self, file, mode)

        return type(
            f"{variant}_handler",
            (base,),
            {
                "authorizer": authorizer,
                "auth_failed_timeout": 0.05,
                "timeout": 120,
                "pre_process_command": pre_process_command,
                "ftp_STOR": ftp_STOR,
                **attributes,
            },
        )

    class NoClobberFS(AbstractedFS):  # type: ignore[misc]
        def rename(self, src: str, dst: str) -> None:
            if os.path.exists(dst):
                raise OSError(errno.EEXIST, "File exists")
            super().rename(src, dst)

    class ResumingData(TLS_DTPHandler):  # type: ignore[misc]
        """Like vsftpd's require_ssl_reuse: a protected data connection must resume the
        control connection's TLS session (so nobody else can hijack the transfer)."""

        def handle_ssl_established(self) -> None:
            if not ssl_lib.SSL_session_reused(self.socket._ssl):
                self.cmd_channel.respond("522 SSL connection failed: session reuse required")
                self.close()

    class Trickle(ThrottledDTPHandler):  # type: ignore[misc]
        read_limit = THROTTLE_BYTES_PER_SECOND
        write_limit = THROTTLE_BYTES_PER_SECOND

    legacy_commands = {
        k: v for k, v in TLS_FTPHandler.proto_cmds.items() if k not in ("EPSV", "MLSD")
    }
    handlers = {
        "ftps": logged(TLS_FTPHandler, "ftps", ssl_context=tls("main"), dtp_handler=ResumingData),
        "other_cert": logged(TLS_FTPHandler, "other_cert", ssl_context=tls("other")),
        "plain_only": logged(FTPHandler, "plain_only"),
        "legacy": logged(
            TLS_FTPHandler,
            "legacy",
            ssl_context=tls("main"),
            masquerade_address=MASQUERADE,
            proto_cmds=legacy_commands,
            abstracted_fs=NoClobberFS,
        ),
        "throttled": logged(FTPHandler, "throttled", dtp_handler=Trickle),
    }
    ioloop = IOLoop()
    ports = {}
    for variant, handler in handlers.items():
        server = FTPServer(("127.0.0.1", 0), handler, ioloop=ioloop)
        ports[variant] = server.address[1]
    with tempfile.NamedTemporaryFile("w", dir=log_dir, delete=False) as ready:
        json.dump(ports, ready)
    os.replace(ready.name, config["ready"])
    ioloop.loop()


if __name__ == "__main__":
    _serve(sys.argv[1])
