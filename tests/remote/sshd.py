"""A real OpenSSH sshd for tests: SFTP only, chrooted, one system user, on a free port.

Other test packages import this to have a partner's SFTP server to pull from or deliver to:

    with running_sshd() as sshd:
        remote, local = sshd.folder("outgoing")   # "/upload/outgoing" as the client sees it
        endpoint = sshd.endpoint(remote)          # password login, pinned host key

The server logs in the system user `dysftp` (created when missing), so file permissions
apply although the tests run as root. Its password is random; sessions running at the same
time share it through a root-only file in /run, and the first session after all others
ended chooses a new one. The chroot lives under /srv: OpenSSH wants every part of a chroot
path owned by root and writable by nobody else, which /tmp is not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from dropyard.remote.base import Endpoint

SSHD = "/usr/sbin/sshd"
USER = "dysftp"
BASE = Path(os.environ.get("DROPYARD_TEST_SSHD_BASE", "/srv/dropyard-sshd"))
STATE = Path("/run/dropyard-tests")
NOLOGIN = next(
    (p for p in ("/usr/sbin/nologin", "/sbin/nologin") if Path(p).exists()), "/bin/false"
)


def unavailable(why: str) -> None:
    """Tests that need the real thing fail under CI=true and are skipped elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def check_can_run() -> None:
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        unavailable(f"{SSHD} and ssh-keygen are needed (scripts/system-deps.sh installs them)")
    if os.geteuid() != 0:
        unavailable("starting sshd with a chroot and a system user needs root")


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def fingerprint(public_key_file: Path) -> str:
    """The SHA256 fingerprint exactly as `ssh-keygen -lf` prints it."""
    return run("ssh-keygen", "-lf", str(public_key_file)).split()[1]


def new_key(path: Path) -> Path:
    """A fresh Ed25519 key pair at `path` and `path`.pub (no passphrase)."""
    for old in (path, path.with_name(path.name + ".pub")):
        old.unlink(missing_ok=True)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dropyard-test", "-f", str(path))
    return path


# -- the system user ---------------------------------------------------------------------


@dataclass(frozen=True)
class SftpUser:
    name: str
    uid: int
    gid: int
    password: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (STATE / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield STATE
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def acquire_user(name: str = USER) -> SftpUser:
    """The test user, created if missing, with the password current sessions share."""
    with _locked() as state:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            run("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                "--shell", NOLOGIN, name)  # fmt: skip
            entry = pwd.getpwnam(name)
        leases = state / "leases"
        leases.mkdir(exist_ok=True)
        live = []
        for lease in leases.iterdir():
            if lease.name.isdigit() and _alive(int(lease.name)):
                live.append(lease)
            else:
                lease.unlink(missing_ok=True)
        stored = state / f"{name}.password"
        if live and stored.exists():
            password = stored.read_text().strip()
        else:
            password = secrets.token_urlsafe(24)
            run("chpasswd", stdin=f"{name}:{password}\n")
            stored.touch(mode=0o600)
            stored.write_text(password)
        (leases / str(os.getpid())).touch()
    return SftpUser(name, entry.pw_uid, entry.pw_gid, password)


def release_user() -> None:
    with _locked() as state:
        (state / "leases" / str(os.getpid())).unlink(missing_ok=True)


# -- the server --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class Sshd:
    """One sshd: its config, host key and log under `root/etc`, its chroot at `chroot`."""

    def __init__(self, root: Path, user: SftpUser) -> None:
        self.root = root
        self.user = user
        self.etc = root / "etc"
        self.chroot = root / "chroot"
        self.log_path = self.etc / "sshd.log"
        self.host_key = self.etc / "host_ed25519"
        self.authorized_keys = self.etc / "authorized_keys"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        for folder in (root.parent, root, self.etc, self.chroot):
            folder.mkdir(mode=0o755, parents=True, exist_ok=True)
            folder.chmod(0o755)
        upload = self.chroot / "upload"
        upload.mkdir(exist_ok=True)
        os.chown(upload, user.uid, user.gid)
        self.authorized_keys.touch(mode=0o644)
        new_key(self.host_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_key.with_name(self.host_key.name + ".pub"))

    def _config(self) -> Path:
        path = self.etc / "sshd_config"
        path.write_text(
            f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.etc / "sshd.pid"}
LogLevel DEBUG1
UsePAM no
UseDNS no
StrictModes no
PermitRootLogin no
AllowUsers {self.user.name}
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {self.authorized_keys}
ChrootDirectory {self.chroot}
ForceCommand internal-sftp
Subsystem sftp internal-sftp
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
MaxStartups 64
MaxSessions 16
"""
        )
        return path

    def start(self, port: int | None = None) -> None:
        """Start on `port`, or on a free one."""
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
        for _ in range(3):  # a free port can be taken between the probe and sshd's bind
            self.port = port or _free_port()
            config = self._config()
            run(SSHD, "-t", "-f", str(config))
            self.process = subprocess.Popen(
                [SSHD, "-D", "-f", str(config), "-E", str(self.log_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if self._wait_ready():
                return
            self.stop()
            if port:
                break
        raise RuntimeError(f"sshd did not start: {self.log()[-2000:]}")

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe,
            ):
                if probe.recv(8).startswith(b"SSH-"):
                    return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the listener and every session
        self.process.wait(10)
        self.process = None

    def restart(self, *, new_host_key: bool = False) -> str:
        """Restart on the same port, with a new host key if asked (a man in the middle, or
        a partner who reinstalled); returns the fingerprint now presented."""
        port = self.port
        self.stop()
        if new_host_key:
            new_key(self.host_key)
        self.start(port)
        return self.fingerprint

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- what tests use -------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def folder(self, name: str, *, mode: int = 0o755) -> tuple[str, Path]:
        """A folder inside the chroot owned by the test user: (path the client uses, path
        on this machine)."""
        local = self.chroot / "upload" / name
        local.mkdir(parents=True, exist_ok=True)
        os.chown(local, self.user.uid, self.user.gid)
        local.chmod(mode)
        return f"/upload/{name}", local

    def authorize(self, public_key: str) -> None:
        with self.authorized_keys.open("a") as keys:
            keys.write(public_key.strip() + "\n")

    def endpoint(self, folder: str, **changes: Any) -> Endpoint:
        """Where this server is, logging in with the password, its host key pinned."""
        endpoint = Endpoint(
            host="127.0.0.1",
            address="127.0.0.1",
            port=self.port,
            folder=folder,
            username=self.user.name,
            password=self.user.password,
            pin=self.fingerprint,
        )
        return replace(endpoint, **changes)

    def session_pids(self) -> list[int]:
        """Every process serving a connection (all descendants of the listener)."""
        if self.process is None:
            return []
        found, queue = [], [self.process.pid]
        while queue:
            children = _children(queue.pop())
            found.extend(children)
            queue.extend(children)
        return found

    def freeze_sessions(self) -> list[int]:
        """SIGSTOP every session: the server stays connected and says nothing more."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    def end_sessions(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def mounted_tmpfs(path: Path, *, size: str, uid: int, gid: int) -> Iterator[Path]:
    """A small filesystem of its own at `path` (a full disk, or a fast one for many files)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755,uid={uid},gid={gid}"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs at {path}: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def sweep() -> None:
    """Remove what sessions that died without cleaning up left under BASE."""
    if not BASE.is_dir():
        return
    for old in BASE.iterdir():
        pid = old.name.partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            for mount in sorted(old.rglob("*"), reverse=True):
                if mount.is_mount():
                    subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def running_sshd() -> Iterator[Sshd]:
    """An sshd for the length of the block (a session fixture, typically)."""
    check_can_run()
    sweep()
    user = acquire_user()
    sshd = Sshd(BASE / f"{os.getpid()}-{secrets.token_hex(4)}", user)
    try:
        sshd.start()
        yield sshd
    finally:
        sshd.remove()
        release_user()
