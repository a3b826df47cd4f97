"""A Dovecot IMAP server on loopback for tests, started once per test session (per xdist
worker) with its own minimal configuration: IMAP and IMAPS on free ports, a self-signed
certificate, one user from a passwd-file, maildirs under a temp dir.

Dovecot runs as the current user where it can; as root it must hand its login processes
to an unprivileged user (`dovenull`) and the mail to another (`nobody`), as packaged.
Tests fill mailboxes with IMAP APPEND, each test in a fresh mailbox. Other test packages
use it by importing the fixture:

    from tests.imapserver import imap_server  # noqa: F401
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dropyard.remote.base import Endpoint
from tests.ftpserver import Certificate, make_certificate

USER = "partner@example.test"
PASSWORD = "imap-s3cret"


def dovecot_binary() -> str:
    """The dovecot binary; fails under CI=true when missing, else skips the test."""
    found = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    message = "dovecot is not installed (scripts/system-deps.sh installs dovecot-imapd)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # a test certificate; the tests check pins themselves
    return context


@dataclass
class ImapServer:
    ports: dict[str, int]  # "imap" (plain) and "imaps" (implicit TLS)
    certificate: Certificate
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def endpoint(
        self,
        mailbox: str = "INBOX",
        *,
        plain: bool = False,
        password: str | None = None,
        pin: str | None = None,
    ) -> Endpoint:
        return Endpoint(
            host="127.0.0.1",
            address="127.0.0.1",
            port=self.ports["imap" if plain else "imaps"],
            folder=mailbox,
            username=USER,
            password=PASSWORD if password is None else password,
            pin=pin,
            plain=plain,
        )

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4_SSL]:
        """A logged-in imaplib client, to arrange and inspect mailboxes."""
        client = imaplib.IMAP4_SSL(
            "127.0.0.1", self.ports["imaps"], ssl_context=_client_context(), timeout=10
        )
        try:
            client.login(USER, PASSWORD)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def new_mailbox(self) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        with self.client() as client:
            answer, data = client.create(name)
            assert answer == "OK", data
        return name

    def append(self, mailbox: str, raw: bytes, flags: str = "") -> int:
        """APPEND a message; its UID (Dovecot answers APPENDUID)."""
        with self.client() as client:
            answer, data = client.append(mailbox, flags or None, None, raw)
        assert answer == "OK", data
        found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
        assert found, data
        return int(found.group(1))

    def flags(self, mailbox: str, uid: int) -> set[str]:
        """The flags of a message; empty when it is gone."""
        with self.client() as client:
            client.select(mailbox, readonly=True)
            answer, data = client.uid("FETCH", str(uid), "(FLAGS)")
        found = re.search(rb"FLAGS \(([^)]*)\)", b" ".join(d for d in data if isinstance(d, bytes)))
        return set(found.group(1).decode().split()) if answer == "OK" and found else set()

    def uids(self, mailbox: str) -> list[int]:
        with self.client() as client:
            client.select(mailbox, readonly=True)
            answer, data = client.uid("SEARCH", "ALL")
        assert answer == "OK", data
        return [int(w) for w in (data[0] or b"").split()]


def _config(directory: Path, ports: dict[str, int], certificate: Certificate) -> str:
    if os.geteuid() == 0:
        # Dovecot's login processes must not run as root; the mail may not belong to it.
        login_user, internal_user, internal_group = "dovenull", "dovecot", "dovecot"
        mail = pwd.getpwnam("nobody")
        uid, gid = mail.pw_uid, mail.pw_gid
    else:
        me = pwd.getpwuid(os.getuid())
        login_user = internal_user = me.pw_name
        internal_group = grp.getgrgid(os.getgid()).gr_name
        uid, gid = os.getuid(), os.getgid()
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {directory}/run
state_dir = {directory}/state
instance_name = dropyard-test-{directory.name}
log_path = {directory}/dovecot.log
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = 1
ssl = yes
ssl_cert = <{certificate.cert}
ssl_key = <{certificate.key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
mail_location = maildir:{directory}/mail/%n
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {directory}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={directory}/mail/%n
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # no growing delays after failed logins: tests fail logins on purpose
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
            return probe.recv(64).startswith(b"* OK")
    except OSError:
        return False


def start_imap_server() -> ImapServer:
    binary = dovecot_binary()
    # Unix socket paths are short (108 bytes): a short directory of our own under /tmp.
    directory = Path(tempfile.mkdtemp(prefix="dy-imap-", dir="/tmp"))
    directory.chmod(0o755)  # the login and mail users pass through it when we are root
    certificate = make_certificate(directory / "tls")
    (directory / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    mail = directory / "mail"
    mail.mkdir()
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    ports = {"imap": _free_port(), "imaps": _free_port()}
    conf = directory / "dovecot.conf"
    conf.write_text(_config(directory, ports, certificate))
    checked = subprocess.run(
        [binary, "-n", "-c", str(conf)], capture_output=True, text=True, timeout=30, check=False
    )
    if checked.returncode != 0:
        raise RuntimeError(f"dovecot refused the test configuration:\n{checked.stderr}")
    with (directory / "stderr.log").open("ab") as output:
        process = subprocess.Popen(
            [binary, "-F", "-c", str(conf)], stdout=output, stderr=subprocess.STDOUT
        )
    server = ImapServer(ports, certificate, directory, process)
    deadline = time.monotonic() + 30
    while not _answers(ports["imap"]):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_imap_server(server)
            errors = (directory / "stderr.log").read_text(errors="replace")
            raise RuntimeError(f"dovecot did not start:\n{errors[-2000:]}\n{server.log[-2000:]}")
        time.sleep(0.1)
    return server


def stop_imap_server(server: ImapServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    server = start_imap_server()
    try:
        yield server
    finally:
        stop_imap_server(server)
