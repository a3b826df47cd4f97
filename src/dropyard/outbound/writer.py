"""The streaming table writer of outbound files: CSV, TSV, pipe or XLSX, optionally gzip.

Rows go straight to a temporary file in a given directory (XLSX through openpyxl's
write-only mode), so memory stays flat however many rows a report has. A text cell that
a spreadsheet would run as a formula — one starting with `=`, `+`, `-`, `@`, tab, CR or
NUL — is written with a leading `'`. Numbers are never escaped: money is written as plain
text with two decimals (half-even), whole numbers as digits, times in ISO 8601 with the
connection's offset.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Protocol, cast

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

FileFormat = Literal["csv", "tsv", "pipe", "xlsx"]
Compression = Literal["none", "gzip"]
Cell = str | int | Decimal | date | datetime | None

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00")
DELIMITERS: dict[str, str] = {"csv": ",", "tsv": "\t", "pipe": "|"}
EXTENSIONS: dict[str, str] = {"csv": "csv", "tsv": "tsv", "pipe": "txt", "xlsx": "xlsx"}
_CENTS = Decimal("0.01")
_CHUNK = 1024 * 1024


def extension(fmt: str, compression: str = "none") -> str:
    """The file extension of a format, e.g. `csv.gz` (no leading dot)."""
    ext = EXTENSIONS[fmt]
    return f"{ext}.gz" if compression == "gzip" else ext


def escape_text(value: str) -> str:
    """Text as a spreadsheet shows it, never as a formula it would run."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def money(value: Decimal) -> str:
    return format(value.quantize(_CENTS, rounding=ROUND_HALF_EVEN), "f")


def as_text(cell: Cell, tz: tzinfo = UTC) -> str:
    """One cell as delimited files write it."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, Decimal):
        return money(cell)
    if isinstance(cell, datetime):
        return cell.astimezone(tz).isoformat(timespec="seconds")
    if isinstance(cell, date):
        return cell.isoformat()
    return escape_text(cell)


@dataclass(frozen=True)
class Written:
    """A finished file: where it is, and what it holds."""

    path: Path
    size: int
    sha256: str
    rows: int


class _Sink(Protocol):
    def write(self, row: Sequence[Cell]) -> None: ...

    def close(self) -> None: ...


class _DelimitedSink:
    def __init__(self, raw: IO[bytes], *, delimiter: str, gzipped: bool, tz: tzinfo) -> None:
        self._raw = raw
        self._gzip = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if gzipped else None
        )
        binary = cast(IO[bytes], self._gzip) if self._gzip is not None else raw
        self._text = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=False)
        # RFC 4180: CRLF line ends, quotes only where needed.
        self._csv = csv.writer(self._text, delimiter=delimiter, lineterminator="\r\n")
        self._tz = tz

    def write(self, row: Sequence[Cell]) -> None:
        self._csv.writerow([as_text(cell, self._tz) for cell in row])

    def close(self) -> None:
        self._text.flush()
        self._text.detach()
        if self._gzip is not None:
            self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()


class _XlsxSink:
    def __init__(self, path: Path, *, sheet: str, tz: tzinfo) -> None:
        self._path = path
        self._book = Workbook(write_only=True)
        self._sheet: WriteOnlyWorksheet = self._book.create_sheet(title=sheet[:31] or "data")
        self._tz = tz

    def write(self, row: Sequence[Cell]) -> None:
        self._sheet.append([self._cell(cell) for cell in row])

    def _cell(self, cell: Cell) -> object:
        if cell is None:
            return None
        if isinstance(cell, bool):
            return as_text(cell, self._tz)
        if isinstance(cell, int):
            return cell
        if isinstance(cell, Decimal):
            # Excel keeps doubles anyway; the format shows the cents.
            number = WriteOnlyCell(self._sheet, value=float(cell.quantize(_CENTS, ROUND_HALF_EVEN)))
            number.number_format = "0.00"
            return number
        # XML cannot hold most control characters: they are dropped, after escaping.
        return ILLEGAL_CHARACTERS_RE.sub("", as_text(cell, self._tz))

    def close(self) -> None:
        self._book.save(self._path)
        with open(self._path, "rb+") as handle:
            os.fsync(handle.fileno())


class TableWriter:
    """Writes a header and rows to a new temporary file in `directory`.

    Use as a context manager: leaving it with an error removes the file. `finish()` closes
    it and returns a `Written` whose path the caller then owns (moves or deletes).
    """

    def __init__(
        self,
        directory: Path,
        columns: Sequence[str],
        *,
        fmt: FileFormat = "csv",
        compression: Compression = "none",
        tz: tzinfo = UTC,
        sheet: str = "data",
    ) -> None:
        if fmt not in EXTENSIONS:
            raise ValueError(f"unknown format {fmt!r}")
        if fmt == "xlsx" and compression == "gzip":
            raise ValueError("xlsx is already compressed; gzip cannot wrap it")
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            dir=directory, prefix=".outbound-", suffix="." + extension(fmt, compression)
        )
        self.path = Path(name)
        self.rows = 0
        self._done = False
        try:
            if fmt == "xlsx":
                os.close(fd)
                self._sink: _Sink = _XlsxSink(self.path, sheet=sheet, tz=tz)
            else:
                raw = os.fdopen(fd, "wb")
                self._sink = _DelimitedSink(
                    raw, delimiter=DELIMITERS[fmt], gzipped=compression == "gzip", tz=tz
                )
            self._sink.write(list(columns))
        except BaseException:
            self.discard()
            raise
        self._width = len(columns)

    def write(self, row: Sequence[Cell]) -> None:
        if len(row) != self._width:
            raise ValueError(f"row has {len(row)} cells; the header has {self._width}")
        self._sink.write(row)
        self.rows += 1

    def finish(self) -> Written:
        self._sink.close()
        self._done = True
        digest = hashlib.sha256()
        size = 0
        with open(self.path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return Written(self.path, size, digest.hexdigest(), self.rows)

    def discard(self) -> None:
        if not self._done:
            with contextlib.suppress(Exception):
                self._sink.close()
        self._done = True
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.discard()
