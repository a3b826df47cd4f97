"""SFTP front-end (asyncssh): authenticates, then maps SFTP requests onto the session core.

asyncssh types stay in this module. Blocking work (password hashing, database, fsync) runs
in threads so one slow commit never stalls the other clients.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import asyncssh
from asyncssh import SFTPAttrs, SFTPName, SFTPVFSAttrs
from asyncssh.constants import FXF_APPEND, FXF_CREAT, FXF_EXCL, FXF_TRUNC, FXF_WRITE

from dropyard.cluster.secrets import InstallationSecrets
from dropyard.credentials.service import HostedLogin
from dropyard.errors import DropyardError, Forbidden, Invalid, NotFound, QuotaExceeded, Transient
from dropyard.gateway.logins import Gateway
from dropyard.gateway.proxy_protocol import Address, ProxiedListener, ProxyPolicy
from dropyard.gateway.session import Entry, GatewaySession, Target, Upload, normalise

log = logging.getLogger(__name__)
T = TypeVar("T")

KEX = ("mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org")
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
MACS = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")
HOST_KEY_ALGS = ("ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256")


@dataclass(frozen=True)
class SftpLimits:
    max_auth_attempts: int = 6
    login_timeout: float = 30.0
    max_sessions_per_address: int = 64
    max_sessions_per_login: int = 32


HOST_KEYS = (("ssh_host_ed25519_key", "ssh-ed25519"), ("ssh_host_rsa_key", "ssh-rsa"))
_MIN_RSA_BITS = 2048


def load_host_keys(
    keys_dir: Path,
    *,
    shared: InstallationSecrets | None = None,
    files: Sequence[Path] = (),
) -> list[asyncssh.SSHKeyPair]:
    """The host keys to present: the operator's `files` when given; else the installation's
    Ed25519 and RSA 3072 keys from `shared` (every node presents the same ones; the first
    node makes them, from its old files in `keys_dir` when it has some, so an upgrade keeps
    the partners' known_hosts valid); without `shared`, files in `keys_dir`, generated on
    first start."""
    if files:
        found = [_operator_key(path) for path in files]
    elif shared is not None:
        found = [_shared_key(shared, keys_dir / name, name, alg) for name, alg in HOST_KEYS]
    else:
        found = [_local_key(keys_dir / name, alg) for name, alg in HOST_KEYS]
    pairs = list(asyncssh.load_keypairs(found))
    for pair in pairs:
        # An RSA key would also offer ssh-rsa (SHA-1) and ssh.com variants: keep SHA-2 only.
        allowed = [alg for alg in pair.host_key_algorithms if alg.decode() in HOST_KEY_ALGS]
        pair.host_key_algorithms = allowed
        pair.sig_algorithms = allowed
    return pairs


def _new_key(alg: str) -> asyncssh.SSHKey:
    if alg == "ssh-rsa":
        return asyncssh.generate_private_key(alg, key_size=3072)
    return asyncssh.generate_private_key(alg)


def _local_key(path: Path, alg: str) -> asyncssh.SSHKey:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(_new_key(alg).export_private_key())
    return asyncssh.read_private_key(str(path))


def _shared_key(shared: InstallationSecrets, old: Path, name: str, alg: str) -> asyncssh.SSHKey:
    def make() -> bytes:
        try:
            key = asyncssh.read_private_key(str(old))
        except (OSError, asyncssh.KeyImportError):
            return bytes(_new_key(alg).export_private_key())
        if key.get_algorithm() != alg:
            return bytes(_new_key(alg).export_private_key())
        log.info("the installation takes this node's SSH host key %s", old)
        return bytes(key.export_private_key())

    key = asyncssh.import_private_key(shared.get_or_create(name, make))
    try:
        if old.exists() and asyncssh.read_private_key(str(old)).public_data != key.public_data:
            log.warning("%s is not the installation's %s host key and is not used", old, alg)
    except (OSError, asyncssh.KeyImportError):
        log.warning("%s is not a readable host key and is not used", old)
    return key


def _operator_key(path: Path) -> asyncssh.SSHKey:
    """A host key file the operator configured (ssh_host_key_files): Ed25519 or RSA."""
    try:
        key = asyncssh.read_private_key(str(path))
    except OSError as exc:
        raise Invalid(
            f"the SSH host key file {path} cannot be read: {exc.strerror or exc}",
            field="ssh_host_key_files",
        ) from None
    except asyncssh.KeyImportError:
        raise Invalid(
            f"the SSH host key file {path} is not an unencrypted OpenSSH or PEM private key",
            field="ssh_host_key_files",
        ) from None
    alg = key.get_algorithm()
    bits = getattr(key.pyca_key, "key_size", 0)
    if alg not in ("ssh-ed25519", "ssh-rsa") or (alg == "ssh-rsa" and bits < _MIN_RSA_BITS):
        shown = f"{alg} ({bits} bits)" if alg == "ssh-rsa" else alg
        raise Invalid(
            f"the SSH host key file {path} holds a {shown} key; use Ed25519 or RSA of "
            f"{_MIN_RSA_BITS} bits or more",
            field="ssh_host_key_files",
        )
    return key


def _unavailable(exc: Transient) -> asyncssh.DisconnectError:
    """A login that could not be checked: the client is told to come back, not that its
    password is wrong (OpenSSH prints "Received disconnect ...: <reason>")."""
    return asyncssh.DisconnectError(asyncssh.DISC_SERVICE_NOT_AVAILABLE, exc.message)


def _to_sftp_error(exc: DropyardError) -> asyncssh.SFTPError:
    if isinstance(exc, NotFound):
        return asyncssh.SFTPNoSuchFile(exc.message)
    if isinstance(exc, Forbidden | Invalid):
        return asyncssh.SFTPPermissionDenied(exc.message)
    if isinstance(exc, QuotaExceeded):
        return asyncssh.SFTPQuotaExceeded(exc.message)
    return asyncssh.SFTPFailure(exc.message)


def _attrs(entry: Entry) -> SFTPAttrs:
    if entry.is_dir:
        mode = 0o40755 if entry.writable else 0o40555
    else:
        mode = 0o100644 if entry.writable else 0o100444
    mtime = int(entry.modified_at.timestamp())
    return SFTPAttrs(
        type=2 if entry.is_dir else 1,
        size=entry.size,
        uid=0,
        gid=0,
        permissions=mode,
        atime=mtime,
        mtime=mtime,
    )


class _ReadHandle:
    def __init__(self, target: Target, handle: BinaryIO, size: int) -> None:
        self.target = target
        self.handle = handle
        self.size = size
        self.read_to_end = False
        self.sent = 0


class _Counter:
    """Sessions in use per key (address or login), with a cap."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._counts: dict[str, int] = {}

    def take(self, key: str) -> bool:
        if self._counts.get(key, 0) >= self._cap:
            return False
        self._counts[key] = self._counts.get(key, 0) + 1
        return True

    def give(self, key: str) -> None:
        left = self._counts.get(key, 0) - 1
        if left > 0:
            self._counts[key] = left
        else:
            self._counts.pop(key, None)


class _SSHServer(asyncssh.SSHServer):
    def __init__(self, front: SftpFrontEnd, *, client: str | None = None) -> None:
        self._front = front
        self._conn: asyncssh.SSHServerConnection | None = None
        # Behind a load balancer: the client's address from the PROXY header.
        self._client = client
        self._address = ""
        self._attempts = 0
        self._key_for: dict[str, HostedLogin] = {}
        self.session: GatewaySession | None = None
        self._counted_address = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._address = self._client or (str(peer[0]) if peer else "")
        front = self._front
        if front.gateway.defender.is_banned(self._address) or not front.per_address.take(
            self._address
        ):
            log.info("refusing SSH connection from %s (banned or too many sessions)", self._address)
            conn.close()
            return
        self._counted_address = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._front.forget(self)
        if self._counted_address:
            self._front.per_address.give(self._address)
            self._counted_address = False
        if self.session is not None:
            self._front.per_login.give(self.session.login.login)
            self.session.close()
            self.session = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        return False

    def _count_attempt(self) -> bool:
        self._attempts += 1
        if self._attempts > self._front.limits.max_auth_attempts:
            if self._conn is not None:
                self._conn.close()
            return False
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        if not self._count_attempt():
            return False
        try:
            session = await asyncio.to_thread(
                self._front.gateway.login_password,
                username,
                password,
                protocol="sftp",
                address=self._address,
            )
        except Transient as exc:
            raise _unavailable(exc) from None
        return self._accept(session)

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._front.gateway.defender.is_banned(self._address):
            return False
        line = key.export_public_key("openssh").decode().strip()
        try:
            found = await asyncio.to_thread(
                self._front.gateway.find_key, username, line, address=self._address
            )
        except Transient as exc:
            raise _unavailable(exc) from None
        if found is not None:
            self._key_for[username] = found
        return found is not None

    def auth_completed(self) -> None:
        # Synchronous on purpose: the client may open its SFTP channel right after this.
        if self.session is not None or self._conn is None:
            return
        found = self._key_for.get(self._conn.get_extra_info("username") or "")
        gateway = self._front.gateway
        if found is None or not self._accept(gateway.key_session(found, address=self._address)):
            self._conn.close()
            return
        task = asyncio.get_running_loop().run_in_executor(
            None,
            lambda: gateway.record_login(
                found, protocol="sftp", address=self._address, method="publickey"
            ),
        )
        self._front.background.add(task)
        task.add_done_callback(self._front.background.discard)

    def _accept(self, session: GatewaySession | None) -> bool:
        if session is None:
            return False
        if not self._front.per_login.take(session.login.login):
            log.info("too many sessions for login %s", session.login.login)
            return False
        self.session = session
        return True


class _SFTPServer(asyncssh.SFTPServer):
    """One SFTP subsystem of one authenticated connection."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], session: GatewaySession) -> None:
        super().__init__(chan)
        self._session = session

    async def _run(self, func: Callable[[], T]) -> T:
        try:
            return func()
        except DropyardError as exc:
            raise _to_sftp_error(exc) from None

    async def _threaded(self, func: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(func)
        except DropyardError as exc:
            raise _to_sftp_error(exc) from None

    # -- paths and listing ------------------------------------------------------------

    def realpath(self, path: bytes) -> bytes:
        try:
            return ("/" + "/".join(normalise(path))).encode()
        except DropyardError as exc:
            raise _to_sftp_error(exc) from None

    async def stat(self, path: bytes) -> SFTPAttrs:
        return _attrs(await self._run(lambda: self._session.stat(path)))

    async def lstat(self, path: bytes) -> SFTPAttrs:
        return await self.stat(path)

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        entries = await self._threaded(lambda: self._session.list(path))
        if self._session.stat(path).is_dir:
            here = _attrs(
                Entry(
                    ".",
                    True,
                    0,
                    entries[0].modified_at if entries else self._session.stat("/").modified_at,
                    False,
                )
            )
            yield SFTPName(b".", attrs=here)
            yield SFTPName(b"..", attrs=here)
        for entry in entries:
            yield SFTPName(entry.name.encode(), attrs=_attrs(entry))

    # -- files ------------------------------------------------------------------------

    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        if pflags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC | FXF_EXCL):
            resume = not (pflags & FXF_TRUNC)
            return await self._run(lambda: self._session.open_upload(path, resume=resume))

        def _open() -> _ReadHandle:
            target, handle = self._session.open_read(path)
            # Not fstat: an object in S3 has no file descriptor, but every reader can seek.
            size = handle.seek(0, os.SEEK_END)
            handle.seek(0)
            return _ReadHandle(target, handle, size)

        return await self._threaded(_open)

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, _ReadHandle):
            raise asyncssh.SFTPPermissionDenied("the file is open for writing")
        file_obj.handle.seek(offset)
        data = file_obj.handle.read(size)
        file_obj.sent += len(data)
        if offset + len(data) >= file_obj.size:
            file_obj.read_to_end = True
        return data

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if not isinstance(file_obj, Upload):
            raise asyncssh.SFTPPermissionDenied("the file is open for reading")
        await self._run(lambda: file_obj.write(data, offset))
        return len(data)

    async def close(self, file_obj: object) -> None:
        if isinstance(file_obj, _ReadHandle):
            file_obj.handle.close()
            if file_obj.read_to_end:
                await self._threaded(
                    lambda: self._session.finished_read(file_obj.target, size=file_obj.sent)
                )
            return
        if not isinstance(file_obj, Upload):
            return
        if self.channel.is_closing():
            # The connection is going away with the file still open: not a completed upload.
            self._session.abort(file_obj)
            return
        await self._threaded(lambda: self._session.finish(file_obj))

    async def fstat(self, file_obj: object) -> SFTPAttrs:
        if isinstance(file_obj, Upload):
            return SFTPAttrs(type=1, size=file_obj.spool.size, permissions=0o100644)
        if isinstance(file_obj, _ReadHandle):
            return SFTPAttrs(type=1, size=file_obj.size, permissions=0o100444)
        raise asyncssh.SFTPInvalidHandle("invalid handle")

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        # Clients set times and modes after an upload; accept silently where the file is
        # theirs to write, but never change anything.
        await self._run(lambda: self._session.stat(path))

    async def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        if attrs.size is not None and isinstance(file_obj, Upload):
            await self._run(lambda: file_obj.spool.truncate(attrs.size or 0))

    async def fsync(self, file_obj: object) -> None:
        return None

    async def remove(self, path: bytes) -> None:
        await self._threaded(lambda: self._session.delete(path))

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._threaded(lambda: self._session.rename(oldpath, newpath))

    async def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self.rename(oldpath, newpath)

    async def statvfs(self, path: bytes) -> SFTPVFSAttrs:
        await self._run(lambda: self._session.stat(path))
        return SFTPVFSAttrs(
            bsize=4096,
            frsize=4096,
            blocks=2**30,
            bfree=2**29,
            bavail=2**29,
            files=2**20,
            ffree=2**19,
            favail=2**19,
            fsid=0,
            flags=0,
            namemax=255,
        )

    async def fstatvfs(self, file_obj: object) -> SFTPVFSAttrs:
        return await self.statvfs(b"/")

    # -- never allowed ----------------------------------------------------------------

    def _refuse(self, what: str) -> None:
        raise asyncssh.SFTPPermissionDenied(f"{what} is not allowed here")

    def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._refuse("creating folders")

    def rmdir(self, path: bytes) -> None:
        self._refuse("removing folders")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        self._refuse("creating links")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        self._refuse("creating links")

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPNoSuchFile("there are no links here")

    def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._refuse("changing attributes")


class SftpFrontEnd:
    """The SFTP listener: start, stop, and the shared counters of its connections."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        host_keys: list[asyncssh.SSHKeyPair],
        limits: SftpLimits | None = None,
        proxy: ProxyPolicy | None = None,
    ) -> None:
        self.gateway = gateway
        self.limits = limits or SftpLimits()
        self._proxy = proxy
        self._options: asyncssh.SSHServerConnectionOptions | None = None
        self.per_address = _Counter(self.limits.max_sessions_per_address)
        self.per_login = _Counter(self.limits.max_sessions_per_login)
        self._host_keys = host_keys
        self._server: asyncssh.SSHAcceptor | ProxiedListener | None = None
        self._connections: set[_SSHServer] = set()
        self.background: set[asyncio.Future[None]] = set()

    def _server_factory(self, client: str | None = None) -> asyncssh.SSHServer:
        server = _SSHServer(self, client=client)
        self._connections.add(server)
        return server

    def _sftp_factory(self, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        owner = chan.get_connection().get_owner()
        if not isinstance(owner, _SSHServer) or owner.session is None:
            raise asyncssh.SFTPPermissionDenied("not logged in")
        return _SFTPServer(chan, owner.session)

    async def start(self, host: str, port: int) -> int:
        options: dict[str, Any] = {
            "server_host_keys": self._host_keys,
            "kex_algs": list(KEX),
            "encryption_algs": list(CIPHERS),
            "mac_algs": list(MACS),
            "compression_algs": ["none"],
            "login_timeout": self.limits.login_timeout,
            "sftp_factory": self._sftp_factory,
            "allow_scp": False,
            "agent_forwarding": False,
            "x11_forwarding": False,
            "allow_pty": False,
            "server_version": "Dropyard",
        }
        if self._proxy is not None:
            # Behind a load balancer: accept here, read the PROXY header, then run asyncssh
            # on the socket (asyncssh.run_server) with the client's address.
            self._options = asyncssh.SSHServerConnectionOptions(**options)
            listener = ProxiedListener(self._proxy, self._run_proxied, name="SFTP")
            self._server = listener
            return await listener.start(host, port)
        acceptor = await asyncssh.create_server(self._server_factory, host, port, **options)
        self._server = acceptor
        sockets = acceptor.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def _run_proxied(self, sock: socket.socket, client: Address) -> None:
        try:
            await asyncssh.run_server(
                sock,
                options=self._options,
                server_factory=lambda: self._server_factory(client[0]),
            )
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            # Failed logins and dropped clients: _SSHServer has scored and logged them.
            log.debug("SSH connection from %s ended before login: %s", client[0], exc)

    def forget(self, server: _SSHServer) -> None:
        self._connections.discard(server)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; give transfers in flight `grace` seconds, then cut them off.

        A connection cut off with an upload still open aborts it: nothing half-committed.
        """
        if self._server is None:
            return
        self._server.close()
        waited: Awaitable[None] = self._server.wait_closed()
        await waited
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(
            s.session is not None and s.session.busy for s in self._connections
        ):
            await asyncio.sleep(0.1)
        for server in list(self._connections):
            server.close()
        self._server = None
