"""Reading test inputs the way the pipeline does: through a stream opener."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from dropyard.datatypes.readers import Limits, RawRow, Table, open_table


class OneWay(io.RawIOBase):
    """A stream that cannot seek, like a socket or a pipe."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._inner.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class CountingFile(io.FileIO):
    """A stored file that counts the bytes read from it: a bomb must be stopped early."""

    def __init__(self, path: Path, counter: list[int]) -> None:
        super().__init__(path, "rb")
        self._counter = counter

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self._counter[0] += len(data or b"")
        return data or b""

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = super().readinto(buffer) or 0
        self._counter[0] += count
        return count


def from_bytes(data: bytes, *, seekable: bool = True) -> Callable[[], BinaryIO]:
    if seekable:
        return lambda: io.BytesIO(data)
    return lambda: io.BufferedReader(OneWay(data))  # type: ignore[return-value]


def from_path(path: Path) -> Callable[[], BinaryIO]:
    return lambda: path.open("rb")


def table(
    data: bytes | Path,
    *,
    name: str = "upload.csv",
    limits: Limits | None = None,
    allow_xlsx: bool = False,
    seekable: bool = True,
) -> Table:
    opener = from_path(data) if isinstance(data, Path) else from_bytes(data, seekable=seekable)
    return open_table(opener, name=name, limits=limits or Limits(), allow_xlsx=allow_xlsx)


def read(
    data: bytes | Path,
    *,
    name: str = "upload.csv",
    limits: Limits | None = None,
    allow_xlsx: bool = False,
    seekable: bool = True,
) -> tuple[list[str], list[RawRow]]:
    opened = table(data, name=name, limits=limits, allow_xlsx=allow_xlsx, seekable=seekable)
    return opened.header, list(opened.rows)


def good(rows: list[RawRow]) -> list[tuple[int, list[str]]]:
    return [(r.line, r.fields) for r in rows if r.fields is not None]


def bad(rows: list[RawRow]) -> list[tuple[int, str]]:
    return [(r.line, r.error.code) for r in rows if r.error is not None]
