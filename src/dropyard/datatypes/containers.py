"""Opening a stored inbound file: plain, gzip, zip, or an xlsx workbook.

Owns the container rules of formats/README.md: what is refused (nested archives, links,
`..` and absolute paths, folder-only archives, other compressed formats) and the
expansion limit — at most `max_ratio` × the compressed size and `max_expanded_bytes` in
all — which is counted on the bytes actually inflated, while they stream, so a bomb stops
early whatever its headers claim. File-level problems raise `FileRejected`.
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol

from dropyard.errors import Terminal

MiB = 1 << 20
GiB = 1 << 30
CHUNK = 1 << 16

FileCode = Literal[
    "EMPTY_FILE",
    "MISSING_COLUMNS",
    "UNKNOWN_COLUMNS",
    "UNSUPPORTED_FORMAT",
    "DECOMPRESSION_LIMIT",
    "TOO_MANY_ERRORS",
    "DUPLICATE_FILE",
]


class FileRejected(Terminal):
    """The whole file fails with one of the file-level codes of formats/results.md."""

    def __init__(self, code: FileCode, message: str) -> None:
        super().__init__(message)
        self.code: FileCode = code


@dataclass(frozen=True)
class Limits:
    """How far an inbound file may expand, and how long one row may be."""

    max_expanded_bytes: int = 5 * GiB
    max_ratio: int = 20
    max_row_bytes: int = MiB


class ByteSource(Protocol):
    """The little of a binary stream that readers use."""

    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


StreamOpener = Callable[[], BinaryIO]


@dataclass(frozen=True)
class Part:
    """One logical file of the container (the file itself, or one zip entry).

    `open` gives its expanded bytes, counted against the limit; `preview` gives them
    uncounted, for reading a header ahead (callers read only a bounded prefix)."""

    name: str
    open: Callable[[], ByteSource]
    preview: Callable[[], ByteSource]


class Container:
    """The parts of an opened file, in order, as delimited text — or, for an xlsx
    workbook, no parts but the seekable `workbook` file."""

    def __init__(
        self,
        parts: list[Part],
        closers: list[Callable[[], None]] | None = None,
        workbook: BinaryIO | None = None,
    ) -> None:
        self.parts = parts
        self.workbook = workbook
        self._closers = closers or []

    def add_closer(self, close: Callable[[], None]) -> None:
        self._closers.append(close)

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers = []


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_FORMATS = (
    (re.compile(rb"BZh[1-9]"), "bzip2"),
    (re.compile(rb"\xfd7zXZ\x00"), "xz"),
    (re.compile(rb"7z\xbc\xaf\x27\x1c"), "7z"),
    (re.compile(rb"Rar!\x1a\x07"), "rar"),
    (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd"),
    (re.compile(rb"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"), "legacy Excel (.xls)"),
    (re.compile(rb"%PDF-"), "PDF"),
)
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_CORRUPT = (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error, NotImplementedError)


def _is_archive(head: bytes) -> bool:
    return head.startswith(_GZIP_MAGIC) or head[:4] in _ZIP_MAGIC


def _human(size: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


class _Budget:
    """Expanded bytes left for the whole file, across all its parts."""

    def __init__(self, limit: int, limits: Limits) -> None:
        self.limit = limit
        self.used = 0
        self._limits = limits

    def over(self) -> FileRejected:
        return FileRejected(
            "DECOMPRESSION_LIMIT",
            f"the file expands to more than {_human(self.limit)} (the limit is "
            f"{self._limits.max_ratio}× its compressed size and at most "
            f"{_human(self._limits.max_expanded_bytes)}); nothing was imported",
        )

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise self.over()


class _Metered:
    """Reads an inflating stream in bounded steps, charging each to the budget and
    turning corrupt-data errors into `UNSUPPORTED_FORMAT`."""

    def __init__(
        self, source: ByteSource, budget: _Budget | None, what: str, *also: ByteSource
    ) -> None:
        self._source = source
        self._budget = budget
        self._what = what
        self._also = also

    def read(self, size: int, /) -> bytes:
        try:
            data = self._source.read(size if size >= 0 else CHUNK)
        except _CORRUPT as exc:
            raise FileRejected(
                "UNSUPPORTED_FORMAT", f"{self._what} is corrupt or cut short ({exc})"
            ) from None
        if self._budget is not None:
            self._budget.charge(len(data))
        return data

    def close(self) -> None:
        self._source.close()
        for other in self._also:
            other.close()


def _read_head(stream: ByteSource, size: int) -> bytes:
    head = b""
    while len(head) < size:
        data = stream.read(size - len(head))
        if not data:
            break
        head += data
    return head


def open_container(
    stream_opener: StreamOpener, *, name: str, limits: Limits, allow_xlsx: bool
) -> Container:
    """Sniff the file by its first bytes (not its name) and open it as a container."""
    stream = stream_opener()
    try:
        head = _read_head(stream, 8)
        if head.startswith(_GZIP_MAGIC):
            return _open_gzip(stream_opener, _size_of(stream, len(head)), name, limits)
        if head[:4] in _ZIP_MAGIC:
            return _open_zip(stream, stream_opener, name, limits, allow_xlsx)
    except BaseException:
        stream.close()
        raise
    stream.close()
    for pattern, label in _OTHER_FORMATS:
        if pattern.match(head):
            raise FileRejected(
                "UNSUPPORTED_FORMAT",
                f"'{name}' is a {label} file; send delimited text, gzip or zip",
            )
    return Container([Part(name, stream_opener, stream_opener)])


def _size_of(stream: BinaryIO, consumed: int) -> int:
    if stream.seekable():
        return stream.seek(0, 2)
    size = consumed
    while data := stream.read(CHUNK):
        size += len(data)
    return size


def _limit(compressed: int, limits: Limits) -> int:
    return min(limits.max_expanded_bytes, limits.max_ratio * compressed)


def _open_gzip(stream_opener: StreamOpener, size: int, name: str, limits: Limits) -> Container:
    budget = _Budget(_limit(size, limits), limits)
    what = f"the gzip data of '{name}'"

    def inflate(budget: _Budget | None) -> ByteSource:
        raw = stream_opener()
        return _Metered(gzip.GzipFile(fileobj=raw, mode="rb"), budget, what, raw)

    preview = inflate(None)
    try:
        if _is_archive(_read_head(preview, 4)):
            raise FileRejected(
                "UNSUPPORTED_FORMAT",
                f"'{name}' holds another archive; nested archives are not accepted",
            )
    finally:
        preview.close()
    return Container([Part(name, lambda: inflate(budget), lambda: inflate(None))])


def _seekable(
    stream: BinaryIO, stream_opener: StreamOpener
) -> tuple[BinaryIO, list[Callable[[], None]]]:
    """zipfile needs to seek; a stream that cannot is copied (from its start) to disk."""
    if stream.seekable():
        stream.seek(0)
        return stream, [stream.close]
    stream.close()
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the container
    try:
        fresh = stream_opener()
        try:
            shutil.copyfileobj(fresh, spool, CHUNK)
        finally:
            fresh.close()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool, [spool.close]


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    path = info.filename.replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "has an absolute path"
    if ".." in path.split("/"):
        return "has '..' in its path"
    mode = info.external_attr >> 16
    if mode & 0o170000 == 0o120000:
        return "is a link"
    if info.flag_bits & 0x1:
        return "is encrypted"
    if info.compress_type not in _ZIP_METHODS:
        return "uses a compression method that is not supported"
    return None


def _is_metadata(path: str) -> bool:
    """macOS Finder adds these to every zip it makes; they hold no data."""
    base = path.rstrip("/").rsplit("/", 1)[-1]
    return path.startswith("__MACOSX/") or base == ".DS_Store"


def _open_zip(
    stream: BinaryIO, stream_opener: StreamOpener, name: str, limits: Limits, allow_xlsx: bool
) -> Container:
    file, closers = _seekable(stream, stream_opener)
    container = Container([], closers)
    try:
        size = file.seek(0, 2)
        file.seek(0)
        try:
            archive = zipfile.ZipFile(file)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise FileRejected(
                "UNSUPPORTED_FORMAT", f"'{name}' is not a readable zip ({exc})"
            ) from None
        closers.append(archive.close)
        infos = archive.infolist()
        budget = _Budget(_limit(size, limits), limits)
        if sum(info.file_size for info in infos) > budget.limit:
            raise budget.over()
        if any(info.filename == "xl/workbook.xml" for info in infos):
            if not allow_xlsx:
                raise FileRejected(
                    "UNSUPPORTED_FORMAT",
                    f"'{name}' is an Excel workbook; this data type takes delimited text",
                )
            file.seek(0)
            container.workbook = file
            return container
        container.parts = _zip_parts(archive, infos, name, budget)
        return container
    except BaseException:
        container.close()
        raise


def _zip_parts(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], name: str, budget: _Budget
) -> list[Part]:
    if not infos:
        raise FileRejected("EMPTY_FILE", f"the zip archive '{name}' is empty")
    entries: list[zipfile.ZipInfo] = []
    for info in infos:
        problem = _entry_problem(info)
        if problem is not None:
            raise FileRejected("UNSUPPORTED_FORMAT", f"zip entry '{info.filename}' {problem}")
        if not info.is_dir() and not _is_metadata(info.filename):
            entries.append(info)
    if not entries:
        raise FileRejected("UNSUPPORTED_FORMAT", f"the zip archive '{name}' holds no files")

    def opener(info: zipfile.ZipInfo, metered: _Budget | None) -> Callable[[], ByteSource]:
        what = f"zip entry '{info.filename}'"

        def open_entry() -> ByteSource:
            try:
                source = archive.open(info)
            except (*_CORRUPT, RuntimeError) as exc:
                raise FileRejected("UNSUPPORTED_FORMAT", f"{what} cannot be read ({exc})") from None
            return _Metered(source, metered, what)

        return open_entry

    parts: list[Part] = []
    for info in entries:
        part = Part(info.filename, opener(info, budget), opener(info, None))
        preview = part.preview()
        try:
            if _is_archive(_read_head(preview, 4)):
                raise FileRejected(
                    "UNSUPPORTED_FORMAT",
                    f"zip entry '{info.filename}' is itself an archive; nested archives "
                    "are not accepted",
                )
        finally:
            preview.close()
        parts.append(part)
    return parts


# -- text encodings and lines -------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    """A text encoding that files may use, with its line-end code units."""

    codec: str
    label: str
    unit: int
    cr: bytes
    lf: bytes


_UTF8 = Encoding("utf-8", "UTF-8", 1, b"\r", b"\n")
_UTF16LE = Encoding("utf-16-le", "UTF-16", 2, b"\r\x00", b"\n\x00")
_UTF16BE = Encoding("utf-16-be", "UTF-16", 2, b"\x00\r", b"\x00\n")


def sniff_encoding(head: bytes, name: str) -> tuple[Encoding, int]:
    """The encoding its byte order mark shows (UTF-8 without one), and the mark's size."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise FileRejected("UNSUPPORTED_FORMAT", f"'{name}' is UTF-32; send UTF-8 or UTF-16")
    if head.startswith(b"\xef\xbb\xbf"):
        return _UTF8, 3
    if head.startswith(b"\xff\xfe"):
        return _UTF16LE, 2
    if head.startswith(b"\xfe\xff"):
        return _UTF16BE, 2
    return _UTF8, 0


@dataclass(frozen=True, slots=True)
class PhysicalLine:
    number: int
    data: bytes
    terminator: bytes
    too_long: bool


def _find(buf: bytes, needle: bytes, start: int, unit: int) -> int:
    """The next `needle` at a code unit boundary, or len(buf)."""
    found = buf.find(needle, start)
    while found > 0 and found % unit:
        found = buf.find(needle, found + 1)
    return len(buf) if found < 0 else found


def physical_lines(
    source: ByteSource, start: bytes, enc: Encoding, max_bytes: int
) -> Iterator[PhysicalLine]:
    """Lines cut at \\n, \\r\\n or \\r, read in fixed chunks. A line over `max_bytes`
    keeps only its first `max_bytes`; the rest is read and dropped chunk by chunk."""
    unit = enc.unit
    limit = max_bytes - max_bytes % unit
    # `buf` always starts at a code unit boundary; `lf`/`cr` cache the next line ends in
    # it (len(buf): none), so that lines without CRs do not rescan the chunk for one.
    buf, pos, eof, number, lf, cr = start, 0, False, 0, -1, -1
    head: bytes | None = None  # the kept start of an over-long line being skipped
    while True:
        lf = lf if lf >= pos else _find(buf, enc.lf, pos, unit)
        cr = cr if cr >= pos else _find(buf, enc.cr, pos, unit)
        at = min(lf, cr)
        end = at + unit
        if at == cr < len(buf) and buf[end : end + unit] == enc.lf:
            end += unit
        elif at == cr == len(buf) - unit and not eof:
            at = len(buf)  # a CR that ends the chunk: is an LF next?
        if at == len(buf):
            if eof:
                if head is not None or pos < len(buf):
                    yield _cut(number + 1, head, buf[pos:], b"", limit)
                return
            if head is None and len(buf) - pos > limit:
                head = buf[pos : pos + limit]
            if head is not None:
                # Drop what was read, keeping one aligned unit (maybe a CR awaiting its LF).
                pos += max(0, len(buf) - pos - (len(buf) - pos) % unit - unit)
            data = source.read(CHUNK)
            eof = not data
            buf, pos, lf, cr = buf[pos:] + data, 0, -1, -1
            continue
        number += 1
        yield _cut(number, head, buf[pos:at], buf[at:end], limit)
        head, pos = None, end


def _cut(
    number: int, head: bytes | None, data: bytes, terminator: bytes, limit: int
) -> PhysicalLine:
    if head is not None:
        return PhysicalLine(number, head, terminator, True)
    if len(data) > limit:
        return PhysicalLine(number, data[:limit], terminator, True)
    return PhysicalLine(number, data, terminator, False)
