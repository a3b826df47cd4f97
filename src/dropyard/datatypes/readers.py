"""Streaming readers: a stored inbound file as a header and raw rows.

Owns the text rules of formats/README.md: encodings (UTF-8 with or without BOM, UTF-16
with BOM), line framing (`\\n`, `\\r\\n`, `\\r`; RFC 4180 quoted fields that span lines),
the delimiter (comma, tab, pipe or semicolon, from the header line), the row size limit
and the first sheet of an xlsx workbook. Memory stays flat: lines are framed from fixed
chunks and an over-long line is skipped, never held. Rows the reader itself cannot take
(bad encoding, NUL bytes, too long, wrong field count) come out with an `error`;
file-level problems raise `FileRejected` — from `open_table`, or, for limits only known
while inflating, from iterating the rows.
"""

from __future__ import annotations

import csv
import importlib
import io
import re
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from decimal import Decimal
from types import TracebackType
from typing import Any, BinaryIO

from dropyard.datatypes.containers import (
    ByteSource,
    Container,
    FileRejected,
    Limits,
    Part,
    PhysicalLine,
    StreamOpener,
    open_container,
    physical_lines,
    sniff_encoding,
)
from dropyard.datatypes.values import RowCode, spelling_key

__all__ = ["FileRejected", "Limits", "RawRow", "RowError", "Table", "open_table"]

DELIMITERS = ",\t|;"


@dataclass(frozen=True)
class RowError:
    """Why one row was rejected; `column` is its canonical name when one is to blame."""

    line: int
    code: RowCode
    column: str | None
    message: str


@dataclass(frozen=True)
class RawRow:
    """One record as sent. `line` is where it starts (unique in the file); `raw` is its
    text, cut to the row limit; `fields` is None when the reader rejected it (`error`).
    `part` names the zip entry it came from."""

    line: int
    fields: list[str] | None
    raw: str
    error: RowError | None = None
    part: str | None = None


class Table:
    """An opened inbound file: its `header` (as sent) and its `rows`, read lazily. Reading
    rows may raise `FileRejected` (DECOMPRESSION_LIMIT, a corrupt archive). `close` frees
    the file early; reading to the end frees it too."""

    def __init__(
        self,
        header: list[str],
        rows: Generator[RawRow, None, None],
        *,
        delimiter: str | None,
        close: Callable[[], None],
    ) -> None:
        self.header = header
        self.delimiter = delimiter
        self._rows = rows
        self._close = close

    @property
    def rows(self) -> Iterator[RawRow]:
        return self._rows

    def __iter__(self) -> Iterator[RawRow]:
        return self._rows

    def close(self) -> None:
        self._rows.close()
        self._close()

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_table(
    stream_opener: StreamOpener, *, name: str, limits: Limits, allow_xlsx: bool
) -> Table:
    """Open a stored file (`stream_opener` gives a fresh binary stream each call) and read
    its header. Raises `FileRejected`: EMPTY_FILE, UNSUPPORTED_FORMAT, DECOMPRESSION_LIMIT,
    or MISSING/UNKNOWN_COLUMNS when zip entries disagree on their columns."""
    # csv refuses fields over 128 KiB by default; a field may be as long as a row. The
    # limit is process-wide, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), limits.max_row_bytes))
    container = open_container(stream_opener, name=name, limits=limits, allow_xlsx=allow_xlsx)
    try:
        if container.workbook is not None:
            return _sheet_table(container, container.workbook, name, limits)
        return _text_table(container, limits)
    except BaseException:
        container.close()
        raise


def _closing(rows: Iterator[RawRow], container: Container) -> Generator[RawRow, None, None]:
    try:
        yield from rows
    finally:
        container.close()


# -- text parts ---------------------------------------------------------------------------


def _ends_quoted(text: str, delimiters: str, quoted: bool) -> bool:
    """Whether a physical line ends inside a quoted field, read as the csv module reads
    RFC 4180: a quote opens a field only at its start; inside, `""` is a quote."""
    pos = 0
    while True:
        found = text.find('"', pos)
        if found < 0:
            return quoted
        if quoted:
            if text.startswith('"', found + 1):
                pos = found + 2
                continue
            quoted = False
        elif found == 0 or text[found - 1] in delimiters:
            quoted = True
        pos = found + 1


@dataclass(frozen=True, slots=True)
class _Record:
    line: int
    text: str
    problem: tuple[RowCode, str] | None


class _TextPart:
    """One part (file or zip entry) of delimited text: its header, then its rows."""

    def __init__(
        self,
        source: ByteSource,
        name: str,
        limits: Limits,
        *,
        offset: int = 0,
        in_zip: bool = False,
    ) -> None:
        head = b""
        while len(head) < 4 and (data := source.read(4 - len(head))):
            head += data
        self._enc, bom = sniff_encoding(head, name)
        self._limit = limits.max_row_bytes
        self._lines = physical_lines(source, head[bom:], self._enc, self._limit)
        self._name = name
        self._offset = offset
        self._in_zip = in_zip
        self.last_line = 0
        self.delimiter: str | None = None
        self._records = self._assemble()

    def _where(self, local: int) -> str:
        if self._in_zip:
            return f"line {local + self._offset} (line {local} of '{self._name}')"
        return f"line {local}"

    def _decode(self, line: PhysicalLine) -> tuple[str, str | None]:
        self.last_line = line.number
        try:
            text = line.data.decode(self._enc.codec)
        except UnicodeDecodeError as exc:
            bad = line.data[exc.start : min(exc.end, exc.start + 4)].hex(" ")
            lossy = line.data.decode(self._enc.codec, "backslashreplace")
            return lossy, (
                f"{self._where(line.number)} is not valid {self._enc.label}: "
                f"byte {bad} at position {exc.start + 1}"
            )
        if "\x00" in text:
            return text.replace("\x00", "\\x00"), f"{self._where(line.number)} has a NUL byte"
        return text, None

    def _assemble(self) -> Iterator[_Record]:
        """Records from lines: a quoted field runs on to its closing quote. A record over
        the size limit keeps its start and is followed, unkept, to its end."""
        pending: list[str] | None = None
        start = size = 0
        problem: str | None = None
        for line in self._lines:
            text, bad = self._decode(line)
            delimiters = self.delimiter or DELIMITERS
            if pending is None:
                if line.too_long:
                    yield self._overlong(line.number, text)
                elif '"' in text and _ends_quoted(text, delimiters, False):
                    start, problem = line.number, bad
                    size = len(line.data) + len(line.terminator)
                    pending = [text, line.terminator.decode(self._enc.codec)]
                elif bad is not None:
                    yield _Record(line.number, text, ("BAD_ENCODING", bad))
                elif text.strip():
                    yield _Record(line.number, text, None)
                continue
            size += len(line.data) + len(line.terminator)
            if line.too_long:  # its unkept end may hold quotes: the record ends here
                yield self._overlong(start, "".join(pending))
                pending = None
                continue
            if size <= self._limit:
                pending.append(text)
                problem = problem or bad
            if _ends_quoted(text, delimiters, True):
                if size <= self._limit:
                    pending.append(line.terminator.decode(self._enc.codec))
                continue
            if size > self._limit:
                yield self._overlong(start, "".join(pending))
            else:
                yield _Record(
                    start, "".join(pending), ("BAD_ENCODING", problem) if problem else None
                )
            pending = None
        if pending is not None and size > self._limit:
            yield self._overlong(start, "".join(pending))
        elif pending is not None:
            message = f"{self._where(start)}: a quoted field is not closed by the end of the file"
            yield _Record(start, "".join(pending).rstrip("\r\n"), ("MALFORMED_ROW", message))

    def _overlong(self, line: int, text: str) -> _Record:
        message = f"{self._where(line)} is longer than {self._limit} bytes"
        return _Record(line, text[: self._limit], ("MALFORMED_ROW", message))

    def header(self) -> list[str] | None:
        """The first non-empty record, split on the delimiter it shows; None if empty."""
        record = next(self._records, None)
        if record is None:
            return None
        if record.problem is not None:
            raise FileRejected(
                "UNSUPPORTED_FORMAT",
                f"the header of '{self._name}' cannot be read: {record.problem[1]}"
                + ("; UTF-16 needs a byte order mark" if "NUL" in record.problem[1] else ""),
            )
        unquoted = re.sub(r'"(?:[^"]|"")*"', "", record.text)
        counts = [unquoted.count(d) for d in DELIMITERS]
        self.delimiter = DELIMITERS[counts.index(max(counts))] if max(counts) else ","
        fields = _split(record.text, self.delimiter)
        if fields is None:
            raise FileRejected("UNSUPPORTED_FORMAT", f"the header of '{self._name}' is malformed")
        return fields

    def rows(self, width: int) -> Iterator[RawRow]:
        """The records after the header; call `header` first."""
        delimiter = self.delimiter or ","
        part = self._name if self._in_zip else None
        for record in self._records:
            line = record.line + self._offset
            raw = record.text[: self._limit]
            problem = record.problem
            fields = None if problem else _split(record.text, delimiter)
            if problem is None:
                if fields is None:
                    problem = ("MALFORMED_ROW", f"{self._where(record.line)} is not valid CSV")
                elif not any(f.strip() for f in fields):
                    continue  # only delimiters: an empty line to a spreadsheet
                elif len(fields) != width:
                    problem = (
                        "MALFORMED_ROW",
                        f"{self._where(record.line)} has {len(fields)} fields, the header "
                        f"has {width}",
                    )
            if problem is not None:
                error = RowError(line, problem[0], None, problem[1])
                yield RawRow(line, None, raw, error, part)
            else:
                yield RawRow(line, fields, raw, None, part)


def _split(text: str, delimiter: str) -> list[str] | None:
    if '"' not in text:
        return text.split(delimiter)
    try:
        return next(csv.reader((text,), delimiter=delimiter, strict=False), [])
    except csv.Error:
        return None


def _text_table(container: Container, limits: Limits) -> Table:
    header: list[str] | None = None
    first, delimiter = "", None
    plan: list[tuple[Part, list[int] | None]] = []
    in_zip = len(container.parts) > 1
    for part in container.parts:
        source = part.preview()
        try:
            reader = _TextPart(source, part.name, limits, in_zip=in_zip)
            found = reader.header()
        finally:
            source.close()
        if found is None:
            continue
        if header is None:
            header, first, delimiter = found, part.name, reader.delimiter
            plan.append((part, None))
        else:
            plan.append((part, _reorder(header, found, first, part.name)))
    if header is None:
        what = "holds only empty files" if in_zip else "is empty"
        raise FileRejected("EMPTY_FILE", f"the file {what}: there is no header line")
    width = len(header)

    def rows() -> Iterator[RawRow]:
        offset = 0
        for part, order in plan:
            source = part.open()
            try:
                reader = _TextPart(source, part.name, limits, offset=offset, in_zip=in_zip)
                reader.header()
                for row in reader.rows(width):
                    if order is not None and row.fields is not None:
                        row = replace(row, fields=[row.fields[i] for i in order])
                    yield row
                offset += reader.last_line
            finally:
                source.close()

    return Table(header, _closing(rows(), container), delimiter=delimiter, close=container.close)


def _reorder(header: list[str], found: list[str], first: str, name: str) -> list[int] | None:
    """How to put an entry's fields in the first entry's column order."""
    keys = [spelling_key(h) for h in header]
    index = {spelling_key(h): i for i, h in enumerate(found)}
    missing = [h for h, k in zip(header, keys, strict=True) if k not in index]
    if missing:
        raise FileRejected(
            "MISSING_COLUMNS",
            f"zip entry '{name}' lacks columns that '{first}' has: {', '.join(missing)}",
        )
    extra = [h for h in found if spelling_key(h) not in set(keys)]
    if extra or len(found) != len(header):
        raise FileRejected(
            "UNKNOWN_COLUMNS",
            f"zip entry '{name}' has columns that '{first}' has not: {', '.join(extra)}",
        )
    order = [index[k] for k in keys]
    return None if order == list(range(len(header))) else order


# -- xlsx -----------------------------------------------------------------------------------


def _sheet_table(container: Container, file: BinaryIO, name: str, limits: Limits) -> Table:
    # Imported here: openpyxl is heavy, untyped, and needed only for workbooks.
    openpyxl: Any = importlib.import_module("openpyxl")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(file, read_only=True, data_only=True)
    except Exception as exc:  # a broken workbook fails in many ways inside openpyxl
        raise FileRejected(
            "UNSUPPORTED_FORMAT", f"'{name}' is not a readable workbook ({exc})"
        ) from None
    container.add_closer(book.close)
    if not book.worksheets:
        raise FileRejected("EMPTY_FILE", f"'{name}' has no sheet")
    sheet = book.worksheets[0]
    sheet.reset_dimensions()  # do not trust the sheet's own idea of its size
    lines = _sheet_lines(sheet.iter_rows(), name)
    header = next((cells for _, cells in lines if any(c.strip() for c in cells)), None)
    if header is None:
        raise FileRejected("EMPTY_FILE", f"the first sheet of '{name}' is empty")
    width, limit = len(header), limits.max_row_bytes

    def rows() -> Iterator[RawRow]:
        for line, cells in lines:
            if not any(c.strip() for c in cells):
                continue
            problem = None
            if len(cells) > width:
                problem = f"line {line} has values right of the last header column"
            elif sum(len(c) for c in cells) + width > limit:
                problem = f"line {line} is longer than {limit} bytes"
            raw = _as_csv(cells)[:limit]
            if problem is not None:
                yield RawRow(line, None, raw, RowError(line, "MALFORMED_ROW", None, problem))
            else:
                yield RawRow(line, cells + [""] * (width - len(cells)), raw)

    return Table(header, _closing(rows(), container), delimiter=None, close=container.close)


def _sheet_lines(rows: Iterator[tuple[Any, ...]], name: str) -> Iterator[tuple[int, list[str]]]:
    """(row number, cell texts without trailing empty cells) for each sheet row."""
    number = 0
    while True:
        try:
            cells = next(rows, None)
        except Exception as exc:  # malformed sheet XML surfaces while streaming
            raise FileRejected(
                "UNSUPPORTED_FORMAT", f"the first sheet of '{name}' is malformed ({exc})"
            ) from None
        if cells is None:
            return
        number += 1
        for cell in cells:
            row = getattr(cell, "row", None)
            if isinstance(row, int):
                number = row
                break
        texts = [_cell_text(cell.value) for cell in cells]
        while texts and not texts[-1]:
            texts.pop()
        yield number, texts


def _cell_text(value: object) -> str:
    """A cell as a partner would have typed it: 12.99 (not 12.990000000000002), 3 (not
    3.0), dates in ISO 8601 (a date alone when the time is midnight)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        shown = format(Decimal(repr(value)), "f")
        return shown[:-2] if shown.endswith(".0") else shown
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _as_csv(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()
