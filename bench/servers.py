"""The servers a benchmark talks to: a real `dropyard serve`, and OpenSSH's `sshd`.

Both expose the same small surface (`SftpTarget`): a port, a login, a remote folder that
takes uploads and one that serves downloads, a way to publish a local file for download
(a hard link, so publishing 1 GiB costs nothing) and a way to clear what was uploaded
between repetitions. Both are logged into with the same ed25519 key.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import func, select
from tests.support import OPERATOR, RunningServer, drop_box, start_server, unique, walk_wizard

from dropyard.files.models import File

BENCH_DIR = Path(__file__).resolve().parent
SSHD = "/usr/sbin/sshd"
SSHD_PRIVSEP_DIR = Path("/run/sshd")
# `sftp -b` runs `!cmd` locally; `@` keeps the line itself out of the output.
_MARK = "@!date +%s.%N\n"
_STAMP = re.compile(r"\d+\.\d+")

# Limits raised so that they are not what is measured.
DROPYARD_ENV = {
    "DROPYARD_MAX_FILE_BYTES": str(4 * 1024**3),
    "DROPYARD_SFTP_MAX_SESSIONS_PER_ADDRESS": "512",
    "DROPYARD_SFTP_MAX_SESSIONS_PER_LOGIN": "512",
    "DROPYARD_FTP_MAX_CONNECTIONS": "512",
    "DROPYARD_FTP_MAX_CONNECTIONS_PER_ADDRESS": "512",
    "DROPYARD_LOG_LEVEL": "WARNING",
}


class SftpTarget(Protocol):
    name: str
    port: int
    login: str
    upload_dir: str
    download_dir: str

    def publish(self, name: str, source: Path) -> None: ...

    def cpu_seconds(self) -> float: ...

    def uploaded_bytes(self) -> int: ...

    def uploaded_count(self) -> int: ...

    def clear_uploads(self) -> None: ...


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    """A scratch folder under bench/out/, removed afterwards.

    Not under /tmp: sshd refuses a ChrootDirectory with any world-writable component.
    """
    base = BENCH_DIR / "out"
    base.mkdir(mode=0o755, exist_ok=True)
    os.chmod(base, 0o755)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def client_key(work: Path) -> Path:
    key = work / "id_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(key)],
            check=True,
        )
    return key


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}:\n{log.read_text(errors='replace')}")


def cpu_of(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) a process used; with `children`, also those of its
    descendants that have exited and been waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" that ends the command name, field 14 (utime) is at index 11.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[str]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return path.read_text().split() if path.exists() else []


def peak_rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


# -- OpenSSH sshd -----------------------------------------------------------------------

_SSHD_CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {dir}/ssh_host_ed25519_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
MaxStartups 1000
MaxSessions 10
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel ERROR
Subsystem sftp internal-sftp
ForceCommand internal-sftp
ChrootDirectory {dir}/root
"""


@dataclass
class Sshd:
    """OpenSSH's own sshd serving internal-sftp, chrooted, on a free loopback port."""

    process: subprocess.Popen[bytes]
    root: Path
    port: int
    login: str = "root"
    name: str = "sshd"
    upload_dir: str = "/data/in"
    download_dir: str = "/data/out"

    @property
    def _uploads(self) -> Path:
        return self.root / self.upload_dir.lstrip("/")

    def cpu_seconds(self) -> float:
        """The listener's CPU and that of every finished session (sshd forks one per
        connection and reaps it), once the sessions still exiting have been reaped."""
        deadline = time.monotonic() + 5
        while _children(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return cpu_of(self.process.pid, children=True)

    def publish(self, name: str, source: Path) -> None:
        target = self.root / self.download_dir.lstrip("/") / name
        target.unlink(missing_ok=True)
        os.link(source, target)

    def uploaded_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._uploads.iterdir())

    def uploaded_count(self) -> int:
        return sum(1 for _ in self._uploads.iterdir())

    def clear_uploads(self) -> None:
        for path in self._uploads.iterdir():
            path.unlink()


@contextlib.contextmanager
def sshd(work: Path, key: Path) -> Iterator[Sshd]:
    home = work / "sshd"
    home.mkdir(mode=0o755)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "ssh_host_ed25519_key")],
        check=True,
    )
    (home / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    root = home / "root"
    root.mkdir(mode=0o755)
    for sub in ("data", "data/in", "data/out"):
        (root / sub).mkdir(mode=0o755)
    port = free_port()
    config = home / "sshd_config"
    config.write_text(_SSHD_CONFIG.format(port=port, dir=home))
    # Debian's service unit creates this; sshd refuses to start without it.
    SSHD_PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    log = home / "sshd.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_port(port, process, log)
        yield Sshd(process, root, port)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- Dropyard ---------------------------------------------------------------------------


@dataclass
class Dropyard:
    """A real `dropyard serve` with one partner login (public key) and two folders."""

    server: RunningServer
    login: str
    inbound_id: int
    outbound_id: int
    upload_dir: str
    download_dir: str
    name: str = "dropyard"

    @property
    def port(self) -> int:
        return self.server.ports["sftp"]

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def cpu_seconds(self) -> float:
        return cpu_of(self.pid)

    def publish(self, name: str, source: Path) -> None:
        folder = self.server.settings.files_dir / "folders" / str(self.outbound_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).unlink(missing_ok=True)
        os.link(source, folder / name)

    def _rows(self) -> tuple[int, int]:
        with self.server.app.sessions() as session:
            count, total = session.execute(
                select(func.count(File.id), func.coalesce(func.sum(File.size), 0)).where(
                    File.connection_id == self.inbound_id
                )
            ).one()
        return int(count), int(total)

    def uploaded_bytes(self) -> int:
        return self._rows()[1]

    def uploaded_count(self) -> int:
        return self._rows()[0]

    def clear_uploads(self) -> None:
        """Drop the stored bytes and receipts (rows stay: counts are taken as deltas)."""
        files = self.server.settings.files_dir
        for folder in (
            files / "inbox" / str(self.inbound_id),
            files / "folders" / str(self.inbound_id),
        ):
            if folder.is_dir():
                for path in folder.iterdir():
                    path.unlink()


@contextlib.contextmanager
def dropyard(
    work: Path, key: Path, *, roles: str = "sftp", extra_env: dict[str, str] | None = None
) -> Iterator[Dropyard]:
    data_dir = work / "dropyard"
    server = start_server(
        data_dir,
        f"sqlite:///{data_dir / 'dropyard.db'}",
        extra_env={**DROPYARD_ENV, **(extra_env or {})},
        roles=roles,
    )
    try:
        app = server.app
        account = app.accounts.create_account(OPERATOR, name=unique("Bench"), kind="brand")
        inbound = walk_wizard(
            app,
            OPERATOR,
            account=account.id,
            name=unique("Bench in"),
            direction="inbound",
            data_type="conversions",
            method="sftp",
            methodology="push",
            credential={
                "new": {
                    "kind": "hosted_public_key",
                    "name": unique("bench key"),
                    "public_key": key.with_suffix(".pub").read_text(),
                }
            },
        )
        credential_id = inbound.connection.credential_id or 0
        outbound = walk_wizard(
            app,
            OPERATOR,
            account=account.id,
            name=unique("Bench out"),
            direction="outbound",
            data_type="reports",
            method="sftp",
            methodology="hosted",
            credential={"credential_id": credential_id},
        )
        login = app.credentials.get(OPERATOR, credential_id).login or ""
        yield Dropyard(
            server=server,
            login=login,
            inbound_id=inbound.connection.id,
            outbound_id=outbound.connection.id,
            upload_dir=f"/{inbound.connection.folder}",
            download_dir=f"/{outbound.connection.folder}",
        )
    finally:
        server.stop()


@dataclass(frozen=True)
class PasswordBox:
    """A hosted password login with an inbound and an outbound folder (FTP takes only
    passwords)."""

    login: str
    password: str
    inbound_id: int
    outbound_id: int
    upload_dir: str
    download_dir: str


def password_box(server: RunningServer, method: str) -> PasswordBox:
    inbound = drop_box(server.app, method=method)
    outbound = drop_box(
        server.app,
        direction="outbound",
        methodology="hosted",
        method=method,
        data_type="reports",
        account_id=inbound.account_id,
        credential_id=inbound.credential_id,
        password=inbound.password,
    )
    return PasswordBox(
        login=inbound.login,
        password=inbound.password,
        inbound_id=inbound.connection_id,
        outbound_id=outbound.connection_id,
        upload_dir=f"/{inbound.folder}",
        download_dir=f"/{outbound.folder}",
    )


# -- the OpenSSH sftp client ------------------------------------------------------------


@dataclass(frozen=True)
class SftpRun:
    """Seconds of a whole `sftp -b` session, and of the commands alone (between two
    `!date` marks in the batch, so login and logout are left out)."""

    session: float
    commands: float


def sftp_batch(
    target: SftpTarget,
    key: Path,
    commands: str,
    *,
    cwd: Path,
    cipher: str | None = None,
    timeout: float = 600,
) -> SftpRun:
    """Run `sftp -b` with `commands`, timed. Raises if sftp failed."""
    batch = cwd / "batch.txt"
    batch.write_text(f"{_MARK}{commands}{_MARK}")
    args = [
        "sftp",
        "-q",
        "-b",
        str(batch),
        "-P",
        str(target.port),
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "PreferredAuthentications=publickey",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "Compression=no",
        "-o",
        "LogLevel=ERROR",
    ]
    if cipher:
        args += ["-o", f"Ciphers={cipher}"]
    args.append(f"{target.login}@127.0.0.1")
    started = time.perf_counter()
    done = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"sftp against {target.name} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    marks = [float(line) for line in done.stdout.splitlines() if _STAMP.fullmatch(line)]
    if len(marks) != 2:
        raise RuntimeError(f"sftp against {target.name}: no time marks in {done.stdout[-500:]}")
    return SftpRun(session=elapsed, commands=marks[1] - marks[0])
