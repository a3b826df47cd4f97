"""What an FTP transfer touches: the virtual filesystem over a `GatewaySession`, and the
data connections that carry uploads, downloads and listings.

pyftpdlib splits paths into "ftp" paths (what the client typed) and "fs" paths (what
`os.*` is called with). Here both are the same normalised virtual path (`/`, `/<folder>`,
`/<folder>/<file>`): nothing in this module touches the real filesystem, and `..` stops at
`/` before a path ever reaches the session. Uploads and downloads are file-like wrappers
around the session's `Upload` and read handle; this module never commits an upload: the
control channel does, once pyftpdlib reports the transfer complete.
"""

from __future__ import annotations

import logging
import posixpath
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any, BinaryIO

from OpenSSL import SSL
from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import TLS_DTPHandler

from dropyard.errors import DropyardError, NotFound, QuotaExceeded, Transient
from dropyard.gateway.session import Entry, GatewaySession, Target, Upload, normalise

log = logging.getLogger(__name__)

_SIX_MONTHS = 180 * 24 * 60 * 60
OWNER = "dropyard"


def describe(exc: DropyardError) -> str:
    """A DropyardError as one line of FTP reply text (no trailing period, no CR/LF)."""
    if isinstance(exc, NotFound):
        return "No such file or folder"
    text = " ".join(exc.message.split()).rstrip(".") or "Refused"
    return text[0].upper() + text[1:]


def reply(exc: DropyardError) -> str:
    code = 552 if isinstance(exc, QuotaExceeded) else 451 if isinstance(exc, Transient) else 550
    return f"{code} {describe(exc)}."


def _fs_error(exc: DropyardError) -> FilesystemError:
    return FilesystemError(describe(exc))


class UploadFile:
    """What pyftpdlib writes a STOR/APPE into. Closing it neither commits nor aborts."""

    def __init__(self, name: str, upload: Upload, *, offset: int) -> None:
        self.name = name
        self.upload = upload
        self._offset = offset
        self.closed = False

    def write(self, data: bytes) -> int:
        # A refusal (size limit, full disk) propagates as DropyardError: the data channel
        # answers it on the control channel and the upload is aborted.
        self.upload.write(data, self._offset)
        self._offset += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < 0 or offset > self.upload.spool.size:
            raise ValueError("invalid restart position")
        self._offset = offset
        return offset

    def tell(self) -> int:
        return self._offset

    def close(self) -> None:
        self.closed = True


class DownloadFile:
    """What pyftpdlib sends a RETR from."""

    def __init__(self, name: str, target: Target, handle: BinaryIO) -> None:
        self.name = name
        self.target = target
        self._handle = handle
        self.closed = False
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.sent += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._handle.close()


class SessionFS(AbstractedFS):  # type: ignore[misc]
    """pyftpdlib's AbstractedFS over a GatewaySession, plus the transfers it opened."""

    def __init__(self, root: str, cmd_channel: Any) -> None:
        super().__init__("/", cmd_channel)
        self.session: GatewaySession = cmd_channel.session
        self._uploads: dict[str, UploadFile] = {}
        self._downloads: dict[str, DownloadFile] = {}
        # The entries of the last listdir(), used once by the format_* call that follows.
        self._listed: tuple[str, dict[str, Entry]] | None = None

    # -- paths: virtual on both sides ---------------------------------------------------

    def ftpnorm(self, ftppath: str) -> str:
        try:
            return "/" + "/".join(normalise(ftppath, self.cwd))
        except DropyardError:
            # Left as typed: validpath() refuses it through the session.
            return ftppath

    def ftp2fs(self, ftppath: str) -> str:
        return self.ftpnorm(ftppath)

    def fs2ftp(self, fspath: str) -> str:
        return self.ftpnorm(fspath)

    def validpath(self, path: str) -> bool:
        try:
            self.session.resolve(path)
        except NotFound:
            return True  # inside the root; the command itself answers "no such file"
        except DropyardError:
            return False
        return True

    def realpath(self, path: str) -> str:
        return path

    # -- looking ------------------------------------------------------------------------

    def _entry(self, path: str) -> Entry:
        try:
            return self.session.stat(path)
        except DropyardError as exc:
            raise _fs_error(exc) from None

    def stat(self, path: str) -> Entry:
        """pyftpdlib stats a path only to see that it exists; the listings use Entries."""
        return self._entry(path)

    lstat = stat

    def lexists(self, path: str) -> bool:
        try:
            self.session.stat(path)
        except DropyardError:
            return False
        return True

    def isdir(self, path: str) -> bool:
        try:
            return self.session.stat(path).is_dir
        except DropyardError:
            return False

    def isfile(self, path: str) -> bool:
        try:
            return not self.session.stat(path).is_dir
        except DropyardError:
            return False

    def getsize(self, path: str) -> int:
        upload = self._uploads.get(path)
        if upload is not None:  # REST before STOR: resuming the upload just reopened
            return upload.upload.spool.size
        return self._entry(path).size

    def getmtime(self, path: str) -> float:
        return self._entry(path).modified_at.timestamp()

    def chdir(self, path: str) -> None:
        entry = self._entry(path)
        if not entry.is_dir:
            raise FilesystemError("Not a folder")
        self.cwd = path

    def listdir(self, path: str) -> list[str]:
        try:
            entries = self.session.list(path)
        except DropyardError as exc:
            raise _fs_error(exc) from None
        self._listed = (path, {e.name: e for e in entries})
        return [e.name for e in entries]

    def _entries(self, basedir: str, names: Iterable[str], ignore_err: bool) -> Iterator[Entry]:
        listed, self._listed = self._listed, None
        known = listed[1] if listed is not None and listed[0] == basedir else {}
        for name in names:
            entry = known.get(name)
            if entry is None:
                try:
                    entry = self.session.stat(posixpath.join(basedir, name))
                except DropyardError as exc:
                    if ignore_err:
                        continue
                    raise _fs_error(exc) from None
            yield entry

    def format_list(
        self, basedir: str, listing: list[str], ignore_err: bool = True
    ) -> Iterator[bytes]:
        now = time.time()
        for entry in list(self._entries(basedir, listing, ignore_err)):
            if entry.is_dir:
                mode = "drwxr-xr-x" if entry.writable else "dr-xr-xr-x"
            else:
                mode = "-rw-r--r--" if entry.writable else "-r--r--r--"
            at = entry.modified_at.astimezone(UTC)
            shape = "%b %d  %Y" if now - at.timestamp() > _SIX_MONTHS else "%b %d %H:%M"
            line = (
                f"{mode}   1 {OWNER:<8} {OWNER:<8} {entry.size:>8} "
                f"{at.strftime(shape)} {entry.name}\r\n"
            )
            yield line.encode("utf-8", "replace")

    def format_mlsx(
        self,
        basedir: str,
        listing: list[str],
        perms: str,
        facts: list[str],
        ignore_err: bool = True,
    ) -> Iterator[bytes]:
        for entry in list(self._entries(basedir, listing, ignore_err)):
            found: dict[str, str] = {}
            if "type" in facts:
                found["type"] = "dir" if entry.is_dir else "file"
            if "perm" in facts:
                if entry.is_dir:
                    found["perm"] = "elc" if entry.writable else "el"
                else:
                    found["perm"] = "rd" if entry.writable else "r"
            if "size" in facts:
                found["size"] = str(entry.size)
            if "modify" in facts:
                found["modify"] = entry.modified_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
            text = "".join(f"{key}={found[key]};" for key in sorted(found))
            yield f"{text} {entry.name}\r\n".encode("utf-8", "replace")

    # -- transfers ----------------------------------------------------------------------

    def open(self, filename: str, mode: str) -> UploadFile | DownloadFile:
        if mode == "rb":
            try:
                target, handle = self.session.open_read(filename)
            except DropyardError as exc:
                raise _fs_error(exc) from None
            download = DownloadFile(filename, target, handle)
            self._close_download(filename)
            self._downloads[filename] = download
            return download
        # A new upload replaces whatever this connection opened before and never sent.
        self.abort_uploads()
        resume = mode != "wb"
        try:
            upload = self.session.open_upload(filename, resume=resume)
        except DropyardError as exc:
            raise _fs_error(exc) from None
        wrapper = UploadFile(filename, upload, offset=upload.spool.size if mode == "ab" else 0)
        self._uploads[filename] = wrapper
        return wrapper

    @property
    def uploading(self) -> bool:
        return bool(self._uploads)

    def take_upload(self, name: str) -> Upload | None:
        wrapper = self._uploads.pop(name, None)
        return wrapper.upload if wrapper is not None else None

    def abort_uploads(self) -> None:
        while self._uploads:
            _, wrapper = self._uploads.popitem()
            self.session.abort(wrapper.upload)

    def take_download(self, name: str) -> DownloadFile | None:
        download = self._downloads.pop(name, None)
        if download is None:
            return None
        download.close()
        return download

    def _close_download(self, name: str) -> None:
        download = self._downloads.pop(name, None)
        if download is not None:
            download.close()

    def release(self) -> None:
        """The connection is gone: nothing it left open survives it."""
        self.abort_uploads()
        for name in list(self._downloads):
            self._close_download(name)
        self.session.close()

    # -- never allowed ------------------------------------------------------------------

    def _refuse(self, what: str) -> None:
        try:
            self.session.refuse(what)
        except DropyardError as exc:
            raise _fs_error(exc) from None

    def mkdir(self, path: str) -> None:
        self._refuse("creating folders")

    def rmdir(self, path: str) -> None:
        self._refuse("removing folders")

    def chmod(self, path: str, mode: int) -> None:
        self._refuse("changing permissions")

    def utime(self, path: str, timeval: float) -> None:
        self._refuse("changing times")

    # -- changing -----------------------------------------------------------------------

    def remove(self, path: str) -> None:
        try:
            self.session.delete(path)
        except DropyardError as exc:
            raise _fs_error(exc) from None

    def rename(self, src: str, dst: str) -> None:
        try:
            self.session.rename(src, dst)
        except DropyardError as exc:
            raise _fs_error(exc) from None


class DataChannel(TLS_DTPHandler):  # type: ignore[misc]
    """One data connection. An upload is complete only if the connection ended cleanly:
    close_notify on TLS, FIN on plain FTP. A reset, a TLS stream cut short, a refusal from
    the session or a timeout leave it incomplete, and the control channel aborts it."""

    receive: bool
    transfer_finished: bool
    _resp: tuple[Any, ...]
    _ssl_accepting: bool
    producer_fifo: Any
    _cut_off = False
    _settled = False
    _close_when_established = False

    def recv(self, buffer_size: int) -> bytes:
        if not self._ssl_requested and self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self._cut_off = True  # a reset from the client: not the end of the file
            self.handle_close()
            return b""
        data: bytes = super().recv(buffer_size)
        return data

    def send(self, data: bytes) -> int:
        if not data:
            return 0  # asynchat writes an empty listing as a 0-byte send: TLS calls that EOF
        sent: int = super().send(data)
        return sent

    def close_when_done(self) -> None:
        if self._ssl_accepting:
            self._do_ssl_handshake()  # a first send may have completed it already
        if self._ssl_accepting:
            # An empty listing would close the channel before the TLS handshake is over,
            # and the client would see a broken transfer: finish the handshake first.
            self._close_when_established = True
            if not self.producer_fifo:  # nothing to write: read, so the handshake moves on
                self.modify_ioloop_events(self.ioloop.READ)
            return
        super().close_when_done()

    def handle_ssl_established(self) -> None:
        if self._close_when_established:
            self._close_when_established = False
            super().close_when_done()
            self.initiate_send()  # an empty queue: this sends nothing and closes
            if not self._closed and self.producer_fifo:
                self.modify_ioloop_events(self.ioloop.WRITE)

    def _ended_cleanly(self) -> bool:
        if self._cut_off:
            return False
        try:
            if self._ssl_requested:
                return bool(self.socket.get_shutdown() & SSL.RECEIVED_SHUTDOWN)
            return not self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except (OSError, SSL.Error):
            return False

    def close(self) -> None:
        if self.receive and not self._settled and not self._closed:
            self._settled = True
            if self.transfer_finished and not self._ended_cleanly():
                self.transfer_finished = False
                self._resp = (
                    "426 The data connection was cut off before the end; nothing was kept.",
                    log.info,
                )
            elif self.transfer_finished:
                self._resp = ()  # answered after the commit, in on_file_received
        super().close()

    def handle_error(self) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, DropyardError):
            self._resp = (reply(exc), log.info)
        elif isinstance(exc, SSL.Error):
            self._resp = ("426 TLS error on the data connection; transfer aborted.", log.info)
        else:
            super().handle_error()
            return
        self.transfer_finished = False
        self._settled = True
        self._error = True  # a refused or broken channel gets no TLS goodbye
        self.close()
