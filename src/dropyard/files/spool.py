"""Where an upload is written while in flight: a hidden temp file that nothing else reads.

The SHA-256 is computed as the bytes arrive when they arrive in order (the usual case), so
the commit does not have to read the file again; out-of-order writes (SFTP resumes,
pipelined clients) fall back to one re-read at the end.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import time
from pathlib import Path

from dropyard.errors import QuotaExceeded, Transient

SPOOL_PREFIX = ".upload-"
_CHUNK = 1024 * 1024


class Spool:
    def __init__(self, directory: Path, *, limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=SPOOL_PREFIX, suffix=".part", dir=directory)
        self._fd: int | None = fd
        self.path = Path(name)
        self._limit = limit
        self._size = 0
        self._hasher = hashlib.sha256()
        self._hashed = 0
        self._in_order = True

    @property
    def size(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, data: bytes | memoryview, offset: int | None = None) -> None:
        if self._fd is None:
            raise Transient("the upload is already closed")
        at = self._size if offset is None else offset
        end = at + len(data)
        if end > self._limit:
            raise QuotaExceeded(f"the file is larger than the limit of {self._limit} bytes")
        try:
            written = os.pwrite(self._fd, data, at)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise QuotaExceeded("no space left for this upload; try again later") from None
            raise
        if written != len(data):
            raise Transient("short write to the spool file")
        if self._in_order and at == self._hashed:
            self._hasher.update(data)
            self._hashed = end
        else:
            self._in_order = False
        self._size = max(self._size, end)

    def read(self, offset: int, length: int) -> bytes:
        if self._fd is None:
            return b""
        return os.pread(self._fd, length, offset)

    def truncate(self, size: int) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, size)
        self._size = size
        if size < self._hashed:
            self._in_order = False

    def finish(self) -> tuple[int, str]:
        """fsync and close; the size and SHA-256 of what was written."""
        if self._fd is None:
            raise Transient("the upload is already closed")
        os.fsync(self._fd)
        if not (self._in_order and self._hashed == self._size):
            self._hasher = hashlib.sha256()
            offset = 0
            while chunk := os.pread(self._fd, _CHUNK, offset):
                self._hasher.update(chunk)
                offset += len(chunk)
        os.close(self._fd)
        self._fd = None
        return self._size, self._hasher.hexdigest()

    def discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def sweep(directory: Path, *, older_than: float = 0.0) -> int:
    """Remove spool files a crash left behind. Returns how many were removed."""
    if not directory.is_dir():
        return 0
    removed = 0
    cutoff = time.time() - older_than
    for entry in directory.iterdir():
        if entry.name.startswith(SPOOL_PREFIX) and entry.stat().st_mtime <= cutoff:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed
