"""Real FTP clients against a test server: ftplib (FTPS and plain), curl and lftp."""

from __future__ import annotations

import contextlib
import ftplib
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import DropBox, RunningServer


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test server's certificate is self-signed
    return context


@contextlib.contextmanager
def ftps(
    server: RunningServer,
    box: DropBox | None = None,
    *,
    bind: str = "127.0.0.1",
    protect: bool = True,
    cwd: bool = True,
) -> Iterator[ftplib.FTP_TLS]:
    """An FTPS session (AUTH TLS), logged in as `box` and inside its folder unless told."""
    client = ftplib.FTP_TLS(context=client_context(), timeout=20)
    client.connect("127.0.0.1", server.ports["ftp"], source_address=(bind, 0))
    try:
        if box is not None:
            client.login(box.login, box.password)
            if protect:
                client.prot_p()
            if cwd:
                client.cwd(f"/{box.folder}")
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def plain(server: RunningServer, *, bind: str = "127.0.0.1") -> Iterator[ftplib.FTP]:
    client = ftplib.FTP(timeout=20)
    client.connect("127.0.0.1", server.ports["ftp"], source_address=(bind, 0))
    try:
        yield client
    finally:
        client.close()


def refused(call: object, *args: object) -> str:
    """The error reply a command got; fails the test if the command succeeded."""
    assert callable(call)
    try:
        answer = call(*args)
    except ftplib.Error as exc:
        return str(exc)
    raise AssertionError(f"expected a refusal, got {answer!r}")


def curl(server: RunningServer, box: DropBox, path: str, *args: str, cwd: Path) -> Result:
    done = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--verbose",
            "--ssl-reqd",
            "--insecure",
            "--max-time",
            "30",
            "--user",
            f"{box.login}:{box.password}",
            *args,
            f"ftp://127.0.0.1:{server.ports['ftp']}{path}",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def lftp(server: RunningServer, box: DropBox, commands: str, *, cwd: Path) -> Result:
    script = (
        "set ssl:verify-certificate no; set ftp:ssl-force true; set ftp:ssl-protect-data true; "
        "set net:max-retries 1; set net:timeout 20; "
        f"open -u {box.login},{box.password} -p {server.ports['ftp']} 127.0.0.1; {commands}"
    )
    done = subprocess.run(
        ["lftp", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)
