"""The contract between the pull/deliver services and the protocol clients.

A client (`sftp.py`, `ftp.py`) opens a `RemoteFolder`: one logged-in session at one folder
of a partner's server, reached at an address the network guard has already checked. The
services above never see a protocol type; the clients never see a connection row.

Errors are the `RemoteError` family below, each with the `stage` it happened at, so a
connection test can say "reachable: yes, login: no" and a history can say why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal, Protocol

from dropyard.errors import Terminal, Transient
from dropyard.files.spool import Spool

Stage = Literal["reach", "trust", "login", "folder", "transfer"]


# -- errors -----------------------------------------------------------------------------


class RemoteError(Transient):
    """A remote server failed us in a way that may pass (network, a busy server)."""

    code = "remote"

    def __init__(self, message: str, *, stage: Stage) -> None:
        super().__init__(message)
        self.stage: Stage = stage


class RemoteRefused(Terminal):
    """Retrying the same thing will not help until someone changes something: a wrong
    password, a missing folder, a file too big, a target the network guard refuses."""

    code = "remote_refused"

    def __init__(self, message: str, *, stage: Stage) -> None:
        super().__init__(message)
        self.stage: Stage = stage


class NotTrusted(RemoteRefused):
    """The server presented a host key or certificate other than the pinned one."""

    code = "not_trusted"

    def __init__(self, message: str, *, presented: str) -> None:
        super().__init__(message, stage="trust")
        self.presented = presented


# -- what a client is given --------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Bounds on one session. `deadline` is a time.monotonic() value: past it, the session
    is cut with a clear error whatever it is doing."""

    connect_timeout: float = 15.0
    idle_timeout: float = 60.0
    max_file_bytes: int = 2 * 1024**3
    max_listing: int = 200_000
    deadline: float = field(default_factory=lambda: time.monotonic() + 3600.0)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect. `address` is the IP the guard checked: clients connect
    to it, never to `host` again (a name could re-resolve elsewhere in between); `host` is
    kept for TLS server names and messages."""

    host: str
    address: str
    port: int
    folder: str
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)  # OpenSSH PEM
    # SHA256:... (SSH host key) or the TLS certificate's SHA-256 (hex, colon-separated);
    # None: nothing pinned yet, the session reports what it saw in `presented`.
    pin: str | None = None
    plain: bool = False  # FTP without TLS / IMAP without TLS, only when the connection says


@dataclass(frozen=True)
class RemoteEntry:
    name: str  # a plain name as the server listed it (the service checks it before use)
    size: int
    mtime: int  # whole seconds since the epoch; 0 when the server does not say


# -- what a client gives back ------------------------------------------------------------


class RemoteFolder(Protocol):
    """One logged-in session at one folder. Use as a context manager; every call honours
    the session's Limits and raises only RemoteError / RemoteRefused."""

    @property
    def presented(self) -> str:
        """The fingerprint of the host key or certificate the server presented ("" for
        plain FTP)."""

    def list(self) -> Iterator[RemoteEntry]:
        """Regular files directly in the folder, streamed; raises RemoteRefused past
        `max_listing` entries."""

    def fetch(self, name: str, sink: Spool) -> None:
        """Write the whole file into `sink`; RemoteRefused past `max_file_bytes`."""

    def upload(self, name: str, source: BinaryIO, size: int) -> None:
        """Write under a temporary name, check the size, then rename to `name` (replacing).
        A failure leaves no file under `name`."""

    def delete(self, name: str) -> None: ...

    def probe_writable(self) -> bool:
        """Create and remove a small probe file: can this login write here?"""

    def close(self) -> None: ...

    def __enter__(self) -> RemoteFolder: ...

    def __exit__(self, *exc: object) -> None: ...


class Opener(Protocol):
    """Opens a RemoteFolder (connect, check trust, log in, change to the folder)."""

    def __call__(self, endpoint: Endpoint, limits: Limits) -> RemoteFolder: ...


# -- a connection test's verdicts --------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    check: str  # "reachable", "trusted", "login", "folder readable", "folder writable",
    #             "pattern matches"
    ok: bool
    detail: str


@dataclass(frozen=True)
class ProbeReport:
    verdicts: tuple[Verdict, ...]
    fingerprint: str | None  # what the server presented, for review and pinning
    sample: tuple[str, ...] = ()  # a few names the folder holds (matching the pattern first)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts)
