"""The SFTP client (asyncssh) behind the `RemoteFolder` contract.

Workers are threads, so each session owns a private event loop, running in a thread of its
own (a caller's own loop, or a browser driver's, does not matter), and runs one operation
at a time on it. The host key is checked against the pin during the key exchange, before
any credential is sent. Every server round trip is bounded by the idle timeout and the
session's deadline, reads and writes are pipelined, and every asyncssh or socket error
leaves this module as a `RemoteError`, `RemoteRefused` or `NotTrusted`.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import posixpath
import secrets
import stat
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, TypeVar

import asyncssh

from dropyard.errors import DropyardError, Transient
from dropyard.files.spool import Spool
from dropyard.remote.base import (
    Endpoint,
    Limits,
    NotTrusted,
    RemoteEntry,
    RemoteError,
    RemoteFolder,
    RemoteRefused,
    Stage,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# The host key algorithms asked for, in OpenSSH's order of preference: a server with an
# Ed25519 key presents that one (what its operator will read out), never SHA-1 RSA.
HOST_KEY_ALGS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
_BLOCK = 64 * 1024  # one SFTP read or write request
_DEPTH = 16  # requests in flight per transfer
_LIST_BATCH = 100  # listing entries taken per turn of the loop (OpenSSH sends 100 a READDIR)
_CLOSE_WAIT = 2.0  # seconds a goodbye may take before the socket is simply dropped
_PROBE = b"dropyard write probe\n"


def fingerprint_of(text: str) -> str:
    """A SHA-256 host key fingerprint as `ssh-keygen -lf` prints it ("SHA256:<base64>")."""
    body = text.strip()
    if body[:7].upper() == "SHA256:":
        body = body[7:]
    return "SHA256:" + body.rstrip("=")


def _said(text: object) -> str:
    """A server's own words, made safe to show: printable, short, without a final dot."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in str(text)).strip()
    return cleaned[:200].rstrip(".") or "no reason given"


class _Stalled(Exception):
    """A round trip outlived the idle timeout, or the session its deadline."""

    def __init__(self, *, deadline: bool) -> None:
        super().__init__("stalled")
        self.deadline = deadline


class _PinningClient(asyncssh.SSHClient):
    """Decides on the host key during the key exchange, i.e. before any credential."""

    def __init__(self, pin: str | None) -> None:
        self._pin = fingerprint_of(pin) if pin else None
        self.presented = ""
        self.mismatch = False
        self.stage: Stage = "reach"

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key.get_fingerprint("sha256")
        if self._pin is not None and self.presented != self._pin:
            self.mismatch = True
            return False
        self.stage = "login"
        return True

    def auth_completed(self) -> None:
        self.stage = "folder"


class SftpFolder:
    """One logged-in SFTP session at one folder; see `RemoteFolder`. Not thread-safe: one
    worker thread uses it at a time."""

    def __init__(self, endpoint: Endpoint, limits: Limits) -> None:
        self._endpoint = endpoint
        self._limits = limits
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dropyard-sftp-client", daemon=True
        )
        self._thread.start()
        self._client = _PinningClient(endpoint.pin)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._broken = False  # a round trip stalled: the session can only be closed
        self._folder = endpoint.folder.rstrip("/") or "/"

    # -- the contract ---------------------------------------------------------------------

    @property
    def presented(self) -> str:
        return self._client.presented

    def list(self) -> Iterator[RemoteEntry]:
        sftp = self._session("folder")
        entries = sftp.scandir(self._folder.encode())
        seen, done = 0, False
        try:
            while not done:
                batch, done = self._run(self._take(entries), stage="folder", doing="the listing")
                for entry in batch:
                    if entry.filename in (b".", b".."):
                        continue
                    seen += 1
                    if seen > self._limits.max_listing:
                        raise RemoteRefused(
                            f"the folder '{self._folder}' holds more than "
                            f"{self._limits.max_listing} entries, the most one listing reads "
                            "(DROPYARD_REMOTE_MAX_LISTING)",
                            stage="folder",
                        )
                    listed = self._entry(entry)
                    if listed is not None:
                        yield listed
        finally:
            closer = getattr(entries, "aclose", None)
            if closer is not None:
                self._quietly(closer())

    def fetch(self, name: str, sink: Spool) -> None:
        try:
            sftp = self._session("transfer")
            path = self._path(name)
            self._run(self._fetch(sftp, name, path, sink), stage="transfer", doing="the transfer")
        except BaseException:
            sink.discard()
            raise

    def upload(self, name: str, source: BinaryIO, size: int) -> None:
        sftp = self._session("transfer")
        final = self._path(name)
        temp = self._path(f".{name}.dropyard-{secrets.token_hex(6)}.part")
        try:
            self._run(
                self._upload(sftp, temp, final, source, size), stage="transfer", doing="the write"
            )
        except BaseException:
            self._quietly(sftp.remove(temp))
            raise

    def delete(self, name: str) -> None:
        sftp = self._session("transfer")
        path = self._path(name)
        with contextlib.suppress(_Gone):
            self._run(self._remove(sftp, path), stage="transfer", doing=f"the delete of '{name}'")

    def probe_writable(self) -> bool:
        sftp = self._session("folder")
        path = self._path(f".dropyard-probe-{secrets.token_hex(6)}.part")
        try:
            return self._run(self._probe(sftp, path), stage="folder", doing="the write")
        finally:
            self._quietly(sftp.remove(path))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            with contextlib.suppress(Exception):
                self._complete(self._shut())
                self._complete(self._loop.shutdown_asyncgens())
        finally:
            self._sftp = None
            self._conn = None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    async def _shut(self) -> None:
        """Say goodbye (briefly), drop whatever a frozen or slow server still holds open,
        and cancel what is left on the loop."""
        if self._conn is not None and not self._broken:
            self._conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.wait_closed(), _CLOSE_WAIT)
        if self._conn is not None:
            self._conn.abort()
        await _cancel_all()

    def __enter__(self) -> SftpFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening --------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, check the host key, log in and check the folder."""
        left = self._limits.remaining()
        if left <= 0:
            raise RemoteError("the run's time limit was reached before connecting", stage="reach")
        bound = min(self._limits.connect_timeout, left)
        try:
            self._complete(asyncio.wait_for(self._connect(), bound))
        except TimeoutError:
            raise self._connect_timeout(
                bound, deadline=left < self._limits.connect_timeout
            ) from None
        except DropyardError:
            raise
        except asyncssh.SFTPError as exc:
            raise _sftp_error(exc, stage="folder", doing=f"access to '{self._folder}'") from None
        except (asyncssh.Error, OSError) as exc:
            raise self._connect_error(exc) from None
        self._run(self._check_folder(), stage="folder", doing=f"access to '{self._folder}'")

    async def _connect(self) -> None:
        endpoint = self._endpoint
        keys: list[asyncssh.SSHKey] | None = None
        if endpoint.private_key:
            try:
                keys = [asyncssh.import_private_key(endpoint.private_key)]
            except (asyncssh.KeyImportError, ValueError):
                raise RemoteRefused(
                    "the private key of this connection could not be read", stage="login"
                ) from None
        conn, _ = await asyncssh.create_connection(
            lambda: self._client,
            endpoint.address,
            endpoint.port,
            username=endpoint.username,
            password=endpoint.password,
            client_keys=keys,
            preferred_auth="publickey" if keys else "password,keyboard-interactive",
            # An empty trust list makes asyncssh ask validate_host_public_key; plain keys
            # only (no certificates), so what is pinned is what `ssh-keygen -lf` shows.
            known_hosts=([], [], []),
            server_host_key_algs=list(HOST_KEY_ALGS),
            x509_trusted_certs=None,
            agent_path=None,
            config=[],
            gss_host=None,
        )
        self._conn = conn
        try:
            self._sftp = await conn.start_sftp_client(path_encoding=None)
        except (asyncssh.ChannelOpenError, asyncssh.SFTPError):
            raise RemoteRefused(
                f"the server does not offer SFTP to user '{endpoint.username}'", stage="login"
            ) from None

    async def _check_folder(self) -> None:
        assert self._sftp is not None
        try:
            attrs = await self._within(self._sftp.stat(self._folder.encode()))
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            raise RemoteRefused(
                f"the folder '{self._folder}' does not exist on the server", stage="folder"
            ) from None
        if not _is(attrs, asyncssh.FILEXFER_TYPE_DIRECTORY, stat.S_ISDIR):
            raise RemoteRefused(f"'{self._folder}' on the server is not a folder", stage="folder")

    def _connect_timeout(self, bound: float, *, deadline: bool) -> RemoteError:
        stage = self._client.stage
        if deadline:
            return RemoteError("the run's time limit was reached while connecting", stage=stage)
        if stage == "reach":
            where = _where(self._endpoint)
            return RemoteError(f"no answer from {where} within {bound:g} s", stage="reach")
        step = "the login" if stage == "login" else "starting SFTP"
        return RemoteError(f"the server did not finish {step} within {bound:g} s", stage=stage)

    def _connect_error(self, exc: BaseException) -> RemoteError | RemoteRefused:
        endpoint, client = self._endpoint, self._client
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            if client.mismatch:
                return NotTrusted(
                    f"the server at {_where(endpoint)} presented the host key "
                    f"{client.presented}, not the pinned {fingerprint_of(endpoint.pin or '')}; "
                    "if the partner changed its key, confirm the new fingerprint with them "
                    "and update the connection",
                    presented=client.presented,
                )
            return RemoteRefused("the server's host key could not be verified", stage="trust")
        if isinstance(exc, asyncssh.PermissionDenied):
            return RemoteRefused(
                f"the server refused the login for user '{endpoint.username}'", stage="login"
            )
        if isinstance(exc, asyncssh.KeyExchangeFailed | asyncssh.ProtocolNotSupported):
            return RemoteRefused(
                f"{_where(endpoint)} and Dropyard found no SSH protocol in common: "
                f"{_said(exc.reason)}",
                stage="reach",
            )
        if isinstance(exc, asyncssh.DisconnectError):
            return RemoteError(
                f"the server closed the connection: {_said(exc.reason)}", stage=client.stage
            )
        if isinstance(exc, OSError) and client.stage == "reach":
            reason = _said(os.strerror(exc.errno) if exc.errno else type(exc).__name__).lower()
            return RemoteError(f"could not connect to {_where(endpoint)}: {reason}", stage="reach")
        log.info("sftp session to %s failed: %s", _where(endpoint), type(exc).__name__)
        return RemoteError("the connection to the server was lost", stage=client.stage)

    # -- the work, one coroutine per call -------------------------------------------------

    async def _within(self, work: Awaitable[T]) -> T:
        """One round trip, bounded by the idle timeout and the session's deadline."""
        idle, left = self._limits.idle_timeout, self._limits.remaining()
        try:
            async with asyncio.timeout(max(min(idle, left), 0)):
                return await work
        except TimeoutError:
            self._broken = True  # a request may still be in flight: nothing more to say
            raise _Stalled(deadline=left <= idle) from None

    async def _take(
        self, entries: AsyncIterator[asyncssh.SFTPName]
    ) -> tuple[Sequence[asyncssh.SFTPName], bool]:
        """The next entries, about what one READDIR brings, and whether that was all: one
        loop turn (or timer) per entry would double the time a long listing takes."""
        batch: builtins.list[asyncssh.SFTPName] = []
        return batch, await self._within(self._fill(entries, batch))

    @staticmethod
    async def _fill(entries: AsyncIterator[asyncssh.SFTPName], batch: Any) -> bool:
        try:
            while len(batch) < _LIST_BATCH:
                batch.append(await entries.__anext__())
        except StopAsyncIteration:
            return True
        return False

    def _entry(self, entry: asyncssh.SFTPName) -> RemoteEntry | None:
        attrs = entry.attrs
        if not _is(attrs, asyncssh.FILEXFER_TYPE_REGULAR, stat.S_ISREG):
            return None  # folders, links, devices, sockets
        raw = entry.filename
        try:
            name = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            log.warning("skipped a remote file whose name is not UTF-8: %r", raw)
            return None
        return RemoteEntry(name=name, size=int(attrs.size or 0), mtime=int(attrs.mtime or 0))

    async def _fetch(self, sftp: asyncssh.SFTPClient, name: str, path: bytes, sink: Spool) -> None:
        limit = self._limits.max_file_bytes
        too_big = f"'{name}' is larger than the limit of {limit} bytes"
        try:
            handle = await self._within(sftp.open(path, "rb", encoding=None, block_size=0))
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            raise RemoteRefused(
                f"'{name}' is not on the server (any more)", stage="transfer"
            ) from None
        try:
            attrs = await self._within(handle.stat())
            if not _is(attrs, asyncssh.FILEXFER_TYPE_REGULAR, stat.S_ISREG):
                raise RemoteRefused(f"'{name}' on the server is not a file", stage="transfer")
            if attrs.size is not None and attrs.size > limit:
                raise RemoteRefused(f"{too_big} ({attrs.size} bytes)", stage="transfer")
            block = min(_BLOCK, sftp.limits.max_read_len or _BLOCK)
            # (offset, length, request), in file order; reads run ahead of the writes
            pending: deque[tuple[int, int, asyncio.Future[bytes]]] = deque()
            ahead = total = 0
            try:
                while True:
                    while len(pending) < _DEPTH:
                        pending.append((ahead, block, _read(handle, ahead, block)))
                        ahead += block
                    offset, length, request = pending.popleft()
                    data = await self._within(request)
                    if not data:  # the end of the file
                        return
                    total += len(data)
                    if total > limit:
                        raise RemoteRefused(too_big, stage="transfer")
                    sink.write(data)
                    if len(data) < length:  # a short read: the rest comes before anything later
                        rest, more = offset + len(data), length - len(data)
                        pending.appendleft((rest, more, _read(handle, rest, more)))
            finally:
                await _drop(request for _, _, request in pending)
        finally:
            if not self._broken:
                await self._quiet(handle.close())

    async def _upload(
        self, sftp: asyncssh.SFTPClient, temp: bytes, final: bytes, source: BinaryIO, size: int
    ) -> None:
        handle = await self._within(sftp.open(temp, "xb", encoding=None, block_size=0))
        block = min(_BLOCK, sftp.limits.max_write_len or _BLOCK)
        try:
            pending: deque[asyncio.Future[int]] = deque()
            sent, more = 0, True
            try:
                while more or pending:
                    while more and len(pending) < _DEPTH:
                        data = source.read(block)
                        more = bool(data)
                        if more:
                            pending.append(asyncio.ensure_future(handle.write(data, sent)))
                            sent += len(data)
                    if pending:
                        await self._within(pending.popleft())
            finally:
                await _drop(pending)
            await self._within(handle.close())
        except asyncssh.SFTPFailure:
            if await self._full():
                raise RemoteRefused("no space left on the server", stage="transfer") from None
            raise
        finally:
            if not self._broken:
                await self._quiet(handle.close())
        stored = (await self._within(sftp.stat(temp))).size
        if sent != size or stored != size:
            raise RemoteError(
                f"the server stored {stored} bytes of {sent} sent, {size} expected",
                stage="transfer",
            )
        try:
            await self._within(sftp.posix_rename(temp, final))
        except asyncssh.SFTPOpUnsupported:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await self._within(sftp.remove(final))
            await self._within(sftp.rename(temp, final))

    async def _remove(self, sftp: asyncssh.SFTPClient, path: bytes) -> None:
        try:
            await self._within(sftp.remove(path))
        except asyncssh.SFTPNoSuchFile:
            raise _Gone from None  # already gone: what a delete wants

    async def _probe(self, sftp: asyncssh.SFTPClient, path: bytes) -> bool:
        try:
            handle = await self._within(sftp.open(path, "xb", encoding=None, block_size=0))
            try:
                await self._within(handle.write(_PROBE, 0))
            finally:
                await self._within(handle.close())
        except (asyncssh.SFTPPermissionDenied, asyncssh.SFTPWriteProtect):
            return False
        except asyncssh.SFTPFailure:
            if await self._full():
                raise RemoteRefused("no space left on the server", stage="folder") from None
            raise
        return True

    async def _full(self) -> bool:
        """After a bare "Failure" (SFTPv3 has no code for a full disk): is it full?"""
        assert self._sftp is not None
        try:
            vfs = await asyncio.wait_for(self._sftp.statvfs(self._folder.encode()), 5)
        except Exception:
            return False
        return bool(vfs.frsize) and vfs.bavail * vfs.frsize < _BLOCK

    # -- plumbing -------------------------------------------------------------------------

    def _session(self, stage: Stage) -> asyncssh.SFTPClient:
        if self._sftp is None or self._loop.is_closed():
            raise RemoteError("the session is closed", stage=stage)
        if self._broken:
            raise RemoteError("the session broke off earlier; open a new one", stage=stage)
        return self._sftp

    def _path(self, name: str) -> bytes:
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise RemoteRefused(f"'{name[:100]}' is not a plain file name", stage="transfer")
        return posixpath.join(self._folder, name).encode()

    def _run(self, work: Coroutine[Any, Any, T], *, stage: Stage, doing: str) -> T:
        try:
            return self._complete(work)
        except (RemoteError, RemoteRefused):
            raise
        except Transient as exc:  # the spool: a short local write
            raise RemoteError(exc.message, stage=stage) from None
        except DropyardError as exc:  # the spool: over its limit, local disk full
            raise RemoteRefused(exc.message, stage=stage) from None
        except _Stalled as exc:
            raise RemoteError(self._stalled(exc, doing), stage=stage) from None
        except asyncssh.SFTPError as exc:
            raise _sftp_error(exc, stage=stage, doing=doing) from None
        except (asyncssh.Error, OSError) as exc:
            self._broken = True
            log.info("sftp session to %s lost: %s", _where(self._endpoint), type(exc).__name__)
            raise RemoteError("the connection to the server was lost", stage=stage) from None

    def _stalled(self, exc: _Stalled, doing: str) -> str:
        if exc.deadline:
            return f"{doing} exceeded its time limit"
        return f"the server sent nothing for {self._limits.idle_timeout:g} s"

    def _complete(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the session's loop and wait for its outcome."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _quietly(self, work: Coroutine[Any, Any, object]) -> None:
        """Best-effort cleanup (a temp file, a directory handle): never raises."""
        if self._broken or self._loop.is_closed() or threading.current_thread() is self._thread:
            work.close()
            return
        with contextlib.suppress(Exception):
            self._complete(self._quiet(work))

    async def _quiet(self, work: Awaitable[object]) -> None:
        bound = max(min(self._limits.idle_timeout, 5.0, self._limits.remaining()), 0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(work, bound)


class _Gone(Exception):
    """The file to delete is not there."""


def _read(handle: asyncssh.SFTPClientFile, offset: int, length: int) -> asyncio.Future[bytes]:
    """One READ request (b"" at the end of the file)."""
    return asyncio.ensure_future(handle.read(length, offset))


async def _drop(pending: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel requests still in flight and let them settle."""
    futures = list(pending)
    for future in futures:
        future.cancel()
    if futures:
        await asyncio.gather(*futures, return_exceptions=True)


def _is(attrs: asyncssh.SFTPAttrs, kind: int, test: Any) -> bool:
    if attrs.type not in (None, asyncssh.FILEXFER_TYPE_UNKNOWN):
        return bool(attrs.type == kind)
    return attrs.permissions is not None and bool(test(attrs.permissions))


def _where(endpoint: Endpoint) -> str:
    if endpoint.host == endpoint.address:
        return f"{endpoint.host} port {endpoint.port}"
    return f"{endpoint.host} ({endpoint.address}) port {endpoint.port}"


def _sftp_error(
    exc: asyncssh.SFTPError, *, stage: Stage, doing: str
) -> RemoteError | RemoteRefused:
    if isinstance(exc, asyncssh.SFTPPermissionDenied | asyncssh.SFTPWriteProtect):
        return RemoteRefused(f"the server refused {doing}: permission denied", stage=stage)
    if isinstance(exc, asyncssh.SFTPNoSpaceOnFilesystem):
        return RemoteRefused("no space left on the server", stage=stage)
    if isinstance(exc, asyncssh.SFTPQuotaExceeded):
        return RemoteRefused("the login's quota on the server is used up", stage=stage)
    if isinstance(exc, asyncssh.SFTPNoSuchFile | asyncssh.SFTPNoSuchPath):
        return RemoteRefused(f"{doing} failed: no such file", stage=stage)
    if isinstance(exc, asyncssh.SFTPOpUnsupported):
        return RemoteRefused(f"the server does not support {doing}", stage=stage)
    if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
        return RemoteError("the connection to the server was lost", stage=stage)
    return RemoteError(f"the server failed {doing}: {_said(exc.reason)}", stage=stage)


def open_sftp(endpoint: Endpoint, limits: Limits) -> RemoteFolder:
    """An `Opener`: an SFTP session logged in at `endpoint.folder`."""
    folder = SftpFolder(endpoint, limits)
    try:
        folder.open()
    except BaseException:
        folder.close()
        raise
    return folder


async def _cancel_all() -> None:
    """Cancel whatever the session's loop still runs (bar this) and let it finish."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
