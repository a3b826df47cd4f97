"""FTP and FTPS client (stdlib ftplib): one logged-in session at one folder of a partner's server.

Trust comes from the pinned certificate fingerprint, not from a CA: partners' FTPS servers
are mostly self-signed. The fingerprint is read right after AUTH TLS, before USER/PASS, so a
server presenting another certificate never sees the login. Data connections go to the
control connection's peer whatever a PASV reply names (the "PASV trap": a reply naming
another host would make us connect there), EPSV first, never active mode; protected data
connections resume the control connection's TLS session, as strict servers require.

Listings stream from the data socket as they arrive (MLSD). Servers without MLSD get
NLST, then SIZE and MDTM per name: the names are read first (capped at max_listing),
because the control connection is busy while a listing is in flight.
"""

from __future__ import annotations

import calendar
import contextlib
import ftplib
import io
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Generator, Iterator
from typing import BinaryIO

from dropyard.errors import DropyardError, Transient
from dropyard.files.spool import Spool
from dropyard.remote.base import (
    Endpoint,
    Limits,
    RemoteEntry,
    RemoteError,
    RemoteFolder,
    RemoteRefused,
    Stage,
)
from dropyard.remote.wire import (
    check_pin,
    pinning_context,
    server_text,
    socket_failure,
    where,
)

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_MAX_LINE = 16 * 1024  # one listing line; more is a broken or hostile server
_UNSUPPORTED = ("500", "501", "502", "504")  # "command not understood / not implemented"
_NO_SPACE = ("452", "552")
_PROBE = b"Dropyard checks that it may write here; this file is removed at once.\n"


# -- the ftplib session ------------------------------------------------------------------


class _Control(ftplib.FTP_TLS):
    """ftplib with the safe choices made: passive only, the PASV address ignored, TLS with
    the endpoint's name for SNI and the control session resumed on data connections."""

    trust_server_pasv_ipv4_address = False

    def __init__(self, server_name: str, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.server_name = server_name
        self.protected = False
        self.epsv = True
        self.set_pasv(True)

    def secure_control(self) -> bytes | None:
        """AUTH TLS and the handshake; the DER certificate the server presented."""
        self.voidcmd("AUTH TLS")
        self.sock = self.context.wrap_socket(self.control(), server_hostname=self.server_name)
        self.file = self.sock.makefile(mode="r", encoding=self.encoding)
        return self.sock.getpeercert(binary_form=True)

    def control(self) -> socket.socket:
        if self.sock is None:
            raise OSError("the control connection is closed")
        return self.sock

    def makepasv(self) -> tuple[str, int]:
        peer = self.control().getpeername()
        if self.epsv:
            try:
                _, port = ftplib.parse229(self.sendcmd("EPSV"), peer)  # noqa: S321
            except ftplib.error_perm:
                self.epsv = False  # an older server; PASV below, for the rest of the session
            else:
                return peer[0], port
        _, port = ftplib.parse227(self.sendcmd("PASV"))  # noqa: S321
        return peer[0], port  # whatever address the reply named

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321
        if self.protected:
            session = getattr(self.control(), "session", None)
            try:
                conn = self.context.wrap_socket(
                    conn, server_hostname=self.server_name, session=session
                )
            except BaseException:
                conn.close()
                raise
        return conn, size


# -- the folder --------------------------------------------------------------------------


class FtpFolder:
    """A logged-in FTP(S) session at one folder. Raises only the RemoteError family (and the
    spool's own errors when the local disk fails)."""

    def __init__(self, endpoint: Endpoint, limits: Limits) -> None:
        self._endpoint = endpoint
        self._limits = limits
        self._where = where(endpoint)
        self._ftp = _Control(endpoint.host, pinning_context())
        self._presented = ""
        self._mlsd = True
        self._listing: Generator[RemoteEntry, None, None] | None = None
        self._closed = False

    # -- opening

    def open(self) -> None:
        endpoint = self._endpoint
        with self._mapped("reach", "could not reach"):
            self._ftp.connect(endpoint.address, endpoint.port, timeout=self._timeout(connect=True))
        if not endpoint.plain:
            self._secure()
        with self._mapped("login", "the server refused the login"):
            self._arm()
            self._ftp.login(endpoint.username, endpoint.password or "", secure=False)
        if not endpoint.plain:
            with self._mapped("trust", "the server refused to protect data connections"):
                self._ftp.prot_p()
                self._ftp.protected = True
        with self._mapped("folder", f"the folder '{endpoint.folder}' cannot be opened"):
            self._ftp.voidcmd("TYPE I")
            self._ftp.cwd(endpoint.folder)

    def _secure(self) -> None:
        try:
            self._arm()
            der = self._ftp.secure_control()
        except ftplib.error_perm:
            raise RemoteRefused(
                f"{self._where}: the server does not offer TLS; plain FTP must be allowed "
                "on the connection",
                stage="trust",
            ) from None
        except ssl.SSLError as exc:
            raise RemoteError(
                f"{self._where}: the TLS handshake failed ({server_text(exc.reason or exc)})",
                stage="trust",
            ) from None
        except DropyardError:
            raise
        except Exception as exc:
            raise self._failure(exc, "trust", "the server refused TLS") from None
        try:
            self._presented = check_pin(self._endpoint, der)
        except (RemoteError, RemoteRefused):
            self._ftp.close()  # not one more word to a server we do not trust
            raise

    # -- RemoteFolder

    @property
    def presented(self) -> str:
        return self._presented

    def list(self) -> Iterator[RemoteEntry]:
        self._settle()
        self._listing = self._list()
        return self._listing

    def fetch(self, name: str, sink: Spool) -> None:
        self._settle()
        _check_name(name)
        limit = self._limits.max_file_bytes
        size = self._size(name)
        if size is not None and size > limit:
            raise RemoteRefused(
                f"'{name}' is {size} bytes, more than the limit of {limit} bytes", stage="transfer"
            )
        conn = self._transfer(f"RETR {name}", f"the server refused to send '{name}'")
        received, complete = 0, False
        try:
            with self._mapped("transfer", f"the server refused to send '{name}'"):
                while chunk := self._recv(conn):
                    received += len(chunk)
                    if received > limit:
                        raise RemoteRefused(
                            f"'{name}' is more than the limit of {limit} bytes", stage="transfer"
                        )
                    _spool(sink, chunk)
                complete = True
        finally:
            self._finish(conn, complete=complete)
        if size is not None and received != size:
            raise RemoteError(
                f"'{name}' arrived with {received} of {size} bytes; it may still be being written",
                stage="transfer",
            )

    def upload(self, name: str, source: BinaryIO, size: int) -> None:
        self._settle()
        _check_name(name)
        temp = f".{name}.dropyard-{secrets.token_hex(6)}.part"
        try:
            self._store(temp, source, size)
            self._rename(temp, name)
        except BaseException:
            self._discard(temp)
            raise

    def delete(self, name: str) -> None:
        self._settle()
        _check_name(name)
        with self._mapped("transfer", f"the server refused to delete '{name}'"):
            self._arm()
            self._ftp.delete(name)

    def probe_writable(self) -> bool:
        name = f".dropyard-probe-{secrets.token_hex(6)}.part"
        try:
            self.upload(name, io.BytesIO(_PROBE), len(_PROBE))
        except RemoteRefused as exc:
            log.info("%s: the folder is not writable: %s", self._where, exc.message)
            return False
        try:
            self.delete(name)
        except RemoteRefused:
            log.warning("%s: the probe file %s could be written but not removed", self._where, name)
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._abandon_listing()
        if self._ftp.sock is not None:
            with contextlib.suppress(Exception):
                self._ftp.control().settimeout(min(2.0, self._limits.idle_timeout))
                self._ftp.quit()
        self._ftp.close()

    def __enter__(self) -> FtpFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listing

    def _list(self) -> Generator[RemoteEntry, None, None]:
        if self._mlsd:
            try:
                conn = self._transfer("MLSD", "the folder cannot be listed", declined=_UNSUPPORTED)
            except _Declined:
                self._mlsd = False
                log.info("%s has no MLSD; listing with NLST, SIZE and MDTM", self._where)
            else:
                yield from self._mlsd_entries(conn)
                return
        yield from self._nlst_entries()

    def _mlsd_entries(self, conn: socket.socket) -> Generator[RemoteEntry, None, None]:
        count, complete = 0, False
        try:
            with self._mapped("transfer", "the folder cannot be listed"):
                for line in self._lines(conn):
                    entry = parse_mlsd(line)
                    if entry is None:
                        continue
                    count += 1
                    if count > self._limits.max_listing:
                        raise self._too_many()
                    yield entry
                complete = True
        finally:
            self._finish(conn, complete=complete)

    def _nlst_entries(self) -> Generator[RemoteEntry, None, None]:
        names: list[str] = []
        try:
            conn = self._transfer("NLST", "the folder cannot be listed", declined=("550",))
        except _Declined:
            return  # some servers answer NLST in an empty folder with 550
        complete = False
        try:
            with self._mapped("transfer", "the folder cannot be listed"):
                for line in self._lines(conn):
                    name = line.rstrip("/").rpartition("/")[2]
                    if name and name not in (".", ".."):
                        names.append(name)
                        if len(names) > self._limits.max_listing:
                            raise self._too_many()
                complete = True
        finally:
            self._finish(conn, complete=complete)
        for name in names:
            size = self._size(name)
            if size is None:
                continue  # a folder, a link to nowhere, or nothing this login may read
            with self._mapped("transfer", "the folder cannot be listed"):
                self._arm()
                try:
                    mtime = parse_timestamp(self._ftp.voidcmd(f"MDTM {name}")[4:])
                except ftplib.error_perm:
                    mtime = 0
            yield RemoteEntry(name=name, size=size, mtime=mtime)

    def _lines(self, conn: socket.socket) -> Iterator[str]:
        buffer = b""
        while chunk := self._recv(conn):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if len(buffer) > _MAX_LINE:
                raise RemoteError(
                    "the server sent a listing line that never ends", stage="transfer"
                )
            for raw in lines:
                line = _decode(raw)
                if line:
                    yield line
        if line := _decode(buffer):
            yield line

    def _too_many(self) -> RemoteRefused:
        return RemoteRefused(
            f"the folder holds more than {self._limits.max_listing} entries; move taken "
            "files away or list a narrower folder",
            stage="transfer",
        )

    # -- transfers

    def _transfer(
        self, command: str, refusal: str, *, declined: tuple[str, ...] = ()
    ) -> socket.socket:
        """Open a data connection and start `command` on it; `_Declined` for the codes in
        `declined`."""
        with self._mapped("transfer", refusal, declined=declined):
            self._ftp.timeout = self._arm()
            conn, _ = self._ftp.ntransfercmd(command)
            return conn

    def _recv(self, conn: socket.socket) -> bytes:
        conn.settimeout(self._arm())
        return conn.recv(_CHUNK)

    def _finish(self, conn: socket.socket, *, complete: bool) -> None:
        """End a transfer. After a complete one, the server's final answer decides; after an
        abandoned one, its answer (426 or so) is read and dropped so the session goes on."""
        if isinstance(conn, ssl.SSLSocket):
            with contextlib.suppress(OSError, ValueError):
                conn.settimeout(min(2.0, self._limits.idle_timeout))
                conn.unwrap()  # close_notify: servers keep uploads only after it
        conn.close()
        if complete:
            with self._mapped("transfer", "the transfer failed"):
                self._arm()
                self._ftp.voidresp()
            return
        try:
            self._arm()
            self._ftp.getresp()
        except ftplib.Error:
            pass
        except Exception:
            self._ftp.close()  # the control connection is in an unknown state

    def _store(self, temp: str, source: BinaryIO, size: int) -> None:
        conn = self._transfer(f"STOR {temp}", "the server refused the write")
        sent, complete = 0, False
        try:
            with self._mapped("transfer", "the server refused the write"):
                while chunk := source.read(_CHUNK):
                    conn.settimeout(self._arm())
                    conn.sendall(chunk)
                    sent += len(chunk)
                complete = True
        finally:
            self._finish(conn, complete=complete)
        stored = self._size(temp)
        if sent != size or (stored is not None and stored != size):
            got = sent if stored is None else stored
            raise RemoteError(f"the upload arrived with {got} of {size} bytes", stage="transfer")

    def _rename(self, temp: str, name: str) -> None:
        refusal = f"the server refused to rename the upload to '{name}'"
        with self._mapped("transfer", refusal):
            self._arm()
            try:
                self._ftp.rename(temp, name)
                return
            except ftplib.error_perm:
                if self._size(name) is None:
                    raise  # the target is not in the way: the rename itself is refused
            # Some servers never rename over an existing file: remove it, then retry.
            self._ftp.delete(name)
            self._ftp.rename(temp, name)

    def _discard(self, temp: str) -> None:
        if self._ftp.sock is None:
            return
        with contextlib.suppress(Exception):
            self._arm()
            self._ftp.delete(temp)

    def _size(self, name: str) -> int | None:
        """SIZE, or None when the server will not say (no such file, a folder, no SIZE)."""
        with self._mapped("transfer", f"the server refused to say the size of '{name}'"):
            self._arm()
            try:
                answer = self._ftp.sendcmd(f"SIZE {name}")
            except ftplib.error_perm:
                return None
        text = answer[3:].strip()
        return int(text) if answer.startswith("213") and text.isdigit() else None

    def _settle(self) -> None:
        """Make the control connection ready for a new command."""
        self._abandon_listing()
        self._timeout()  # past the deadline, say so rather than "closed"
        if self._closed or self._ftp.sock is None:
            raise RemoteError(f"{self._where}: the session is closed", stage="transfer")

    def _abandon_listing(self) -> None:
        listing, self._listing = self._listing, None
        if listing is not None:
            listing.close()  # its `finally` ends the transfer

    # -- limits and errors

    def _timeout(self, *, connect: bool = False) -> float:
        remaining = self._limits.remaining()
        if remaining <= 0:
            raise RemoteError(
                f"{self._where}: the session ran past its time limit and was cut", stage="transfer"
            )
        wait = self._limits.connect_timeout if connect else self._limits.idle_timeout
        return min(wait, remaining)

    def _arm(self) -> float:
        """Set the control connection's timeout for the next step; the timeout it set."""
        timeout = self._timeout()
        if self._ftp.sock is not None:
            self._ftp.sock.settimeout(timeout)
        return timeout

    @contextlib.contextmanager
    def _mapped(
        self, stage: Stage, refusal: str, *, declined: tuple[str, ...] = ()
    ) -> Iterator[None]:
        try:
            yield
        except DropyardError:
            raise
        except ftplib.error_perm as exc:
            if str(exc)[:3] in declined:
                raise _Declined from None
            raise self._failure(exc, stage, refusal) from None
        except Exception as exc:
            raise self._failure(exc, stage, refusal) from None

    def _failure(self, exc: BaseException, stage: Stage, refusal: str) -> DropyardError:
        text = server_text(exc)
        code = text[:3]
        if isinstance(exc, ftplib.error_perm | ftplib.error_temp) and code in _NO_SPACE:
            return RemoteRefused(f"no space left on the server ({text})", stage=stage)
        if isinstance(exc, ftplib.error_perm):
            return RemoteRefused(f"{refusal}: {text}", stage=stage)
        if isinstance(exc, ftplib.error_temp):
            return RemoteError(f"{self._where} answered {text}", stage=stage)
        if isinstance(exc, ftplib.Error | EOFError):
            return RemoteError(f"{self._where} answered unexpectedly: {text}", stage=stage)
        if isinstance(exc, ssl.SSLError):
            return RemoteError(f"{self._where}: TLS failed ({text})", stage=stage)
        failed = socket_failure(exc, self._where, self._limits, stage)
        if failed is not None:
            return failed
        if isinstance(exc, UnicodeDecodeError):
            return RemoteError(f"{self._where} sent an answer that is not UTF-8", stage=stage)
        if isinstance(exc, ValueError):  # ftplib refuses line breaks in what it would send
            return RemoteRefused(f"{refusal}: the value cannot be sent over FTP", stage=stage)
        log.exception("unexpected error from the FTP client for %s", self._where)
        return RemoteError(f"{self._where}: the FTP session failed", stage=stage)


class _Declined(Exception):
    """The server answered a code the caller handles itself (a command it does not know)."""


# -- parsing ------------------------------------------------------------------------------


def parse_mlsd(line: str) -> RemoteEntry | None:
    """One MLSD line as a RemoteEntry, or None unless it names a regular file."""
    facts_text, space, name = line.partition(" ")
    if not space or not name or "/" in name:
        return None
    facts: dict[str, str] = {}
    for fact in facts_text.split(";"):
        key, equals, value = fact.partition("=")
        if equals:
            facts[key.strip().lower()] = value
    if facts.get("type", "").lower() != "file":
        return None
    size = facts.get("size", "")
    return RemoteEntry(
        name=name,
        size=int(size) if size.isdigit() else 0,
        mtime=parse_timestamp(facts.get("modify", "")),
    )


def parse_timestamp(value: str) -> int:
    """`YYYYMMDDHHMMSS[.sss]` (UTC, as MLSD and MDTM give it) in whole seconds; 0 if not."""
    try:
        return calendar.timegm(time.strptime(value.strip()[:14], "%Y%m%d%H%M%S"))
    except ValueError:
        return 0


def _decode(raw: bytes) -> str:
    try:
        return raw.rstrip(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        log.info("skipping a listed name that is not UTF-8: %r", raw[:100])
        return ""


def _spool(sink: Spool, chunk: bytes) -> None:
    try:
        sink.write(chunk)
    except OSError as exc:  # the local disk, not the server
        raise Transient(f"could not write the download to the spool: {exc.strerror}") from None


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or any(not c.isprintable() for c in name):
        raise RemoteRefused(f"{server_text(name)!r} is not a plain file name", stage="transfer")


def open_ftp(endpoint: Endpoint, limits: Limits) -> RemoteFolder:
    """Connect to `endpoint.address`, check the certificate pin (FTPS), log in and change
    to the folder. An `Opener`."""
    folder = FtpFolder(endpoint, limits)
    try:
        folder.open()
    except BaseException:
        folder.close()
        raise
    return folder
