"""Local-disk storage under one root directory.

Every key is resolved against the real filesystem and must stay inside the root, so a
link planted in the tree cannot lead a read or write outside it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dropyard.errors import Forbidden, NotFound, Transient
from dropyard.storage.base import ObjectInfo, check_key


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._root = root.resolve()

    @property
    def root(self) -> Path:
        return self._root

    def path_of(self, key: str) -> Path:
        path = self._root.joinpath(*check_key(key))
        real = Path(os.path.realpath(path))
        if real != self._root and self._root not in real.parents:
            raise Forbidden(f"storage key '{key[:100]}' leaves the storage root")
        if path.is_symlink():
            raise Forbidden(f"storage key '{key[:100]}' is a link")
        return real

    def put_file(self, key: str, source: Path) -> None:
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        fsync_dir(target.parent)

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name[:200]}.", suffix=".tmp", dir=target.parent
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise
        if durable:
            fsync_dir(target.parent)

    def open(self, key: str) -> BinaryIO:
        path = self.path_of(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFound(f"'{key[:100]}' does not exist") from None
        except IsADirectoryError:
            raise NotFound(f"'{key[:100]}' is not a file") from None
        return os.fdopen(fd, "rb")

    def stat(self, key: str) -> ObjectInfo | None:
        path = self.path_of(key)
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        if not path.is_file():
            return None
        return ObjectInfo(key, info.st_size, datetime.fromtimestamp(info.st_mtime, UTC))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        folder = self.path_of(prefix)
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        with entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
                yield ObjectInfo(
                    f"{prefix}/{entry.name}",
                    info.st_size,
                    datetime.fromtimestamp(info.st_mtime, UTC),
                )

    def delete(self, key: str) -> bool:
        path = self.path_of(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            return True
        return False

    def check(self) -> None:
        try:
            fd, name = tempfile.mkstemp(prefix=".check-", dir=self._root)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise Transient(f"the file storage at {self._root} is not writable: {exc}") from exc
