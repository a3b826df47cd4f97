"""The virtual filesystem pyftpdlib sees: every call goes to one `GatewaySession`.

pyftpdlib splits paths into "ftp" paths (what the client typed) and "fs" paths (what
`os.*` is called with). Here both are the same normalised virtual path (`/`, `/<folder>`,
`/<folder>/<file>`): nothing in this module touches the real filesystem, and `..` stops at
`/` before a path ever reaches the session. Uploads and downloads are file-like wrappers
around the session's `Upload` and read handle; this module never commits an upload: the
control channel does, once pyftpdlib reports the transfer complete.
"""

from __future__ import annotations

import os
import posixpath
import stat as stat_module
import time
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any, BinaryIO

from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.filesystems import AbstractedFS

from dropyard.errors import DropyardError, NotFound
from dropyard.gateway.session import Entry, GatewaySession, Target, Upload, normalise

_SIX_MONTHS = 180 * 24 * 60 * 60
OWNER = "dropyard"


def describe(exc: DropyardError) -> str:
    """A DropyardError as one line of FTP reply text (no trailing period, no CR/LF)."""
    if isinstance(exc, NotFound):
        return "No such file or folder"
    text = " ".join(exc.message.split()).rstrip(".") or "Refused"
    return text[0].upper() + text[1:]


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

    def read(self, size: int = -1) -> bytes:
        return self._handle.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._handle.close()


def _stat_result(entry: Entry) -> os.stat_result:
    if entry.is_dir:
        mode = stat_module.S_IFDIR | (0o755 if entry.writable else 0o555)
    else:
        mode = stat_module.S_IFREG | (0o644 if entry.writable else 0o444)
    mtime = int(entry.modified_at.timestamp())
    return os.stat_result((mode, 0, 0, 1, 0, 0, entry.size, mtime, mtime, mtime))


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

    def stat(self, path: str) -> os.stat_result:
        return _stat_result(self._entry(path))

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

    def islink(self, path: str) -> bool:
        return False

    def readlink(self, path: str) -> str:
        raise FilesystemError("There are no links here")

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

    listdirinfo = listdir

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

    def take_download(self, name: str) -> Target | None:
        download = self._downloads.pop(name, None)
        if download is None:
            return None
        download.close()
        return download.target

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

    def mkstemp(self, *args: Any, **kwargs: Any) -> None:
        self._refuse("storing under a generated name")

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

    def get_user_by_uid(self, uid: int) -> str:
        return OWNER

    def get_group_by_gid(self, gid: int) -> str:
        return OWNER
