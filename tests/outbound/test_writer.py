"""The table writer: formats, gzip, formula escaping, numbers, header-only files."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from dropyard.outbound.writer import Compression, FileFormat, TableWriter, extension

COLUMNS = ("Name", "Count", "Amount", "When", "Day", "Note")
ROW = (
    "Ann",
    3,
    Decimal("1234.5"),
    datetime(2026, 3, 9, 10, 15, tzinfo=UTC),
    date(2026, 3, 9),
    None,
)
DANGEROUS = ["=1+1", "+33 1 23", "-5", "@SUM(A1)", "\tx", "\rx", "\x00x"]


def _lines(path: Path, *, gz: bool = False) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if gz else data).decode("utf-8")


@pytest.mark.parametrize(("fmt", "delimiter"), [("csv", ","), ("tsv", "\t"), ("pipe", "|")])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_delimited_formats(
    tmp_path: Path, fmt: FileFormat, delimiter: str, compression: Compression
) -> None:
    with TableWriter(
        tmp_path,
        COLUMNS,
        fmt=fmt,
        compression=compression,
        tz=ZoneInfo("Europe/Paris"),
    ) as writer:
        writer.write(ROW)
        writer.write(('Bo, "the" | one', 0, Decimal("-0.005"), None, None, "two\nlines"))
        written = writer.finish()
    assert written.path.name.endswith("." + extension(fmt, compression))
    assert written.rows == 2
    raw = written.path.read_bytes()
    assert written.size == len(raw)
    assert written.sha256 == hashlib.sha256(raw).hexdigest()
    text = _lines(written.path, gz=compression == "gzip")
    assert text.startswith(delimiter.join(COLUMNS) + "\r\n")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    assert rows[1] == ["Ann", "3", "1234.50", "2026-03-09T11:15:00+01:00", "2026-03-09", ""]
    # Money keeps its sign and is not escaped; text with separators is quoted.
    assert rows[2] == ['Bo, "the" | one', "0", "-0.00", "", "", "two\nlines"]


def test_cells_that_would_run_as_formulas_are_quoted(tmp_path: Path) -> None:
    with TableWriter(tmp_path, ["Text"]) as writer:
        for value in [*DANGEROUS, "plain", "a=b"]:
            writer.write((value,))
        written = writer.finish()
    rows = list(csv.reader(io.StringIO(_lines(written.path), newline="")))
    assert [r[0] for r in rows[1:]] == [*["'" + v for v in DANGEROUS], "plain", "a=b"]


def test_xlsx_has_numbers_text_and_no_formulas(tmp_path: Path) -> None:
    with TableWriter(tmp_path, COLUMNS, fmt="xlsx", sheet="performance_by_day") as writer:
        writer.write(ROW)
        for value in DANGEROUS:
            writer.write((value, 1, Decimal("0.10"), None, None, None))
        written = writer.finish()
    assert written.path.suffix == ".xlsx"
    assert written.rows == 8
    book = openpyxl.load_workbook(written.path)
    sheet = book["performance_by_day"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == list(COLUMNS)
    assert rows[1] == ["Ann", 3, 1234.5, "2026-03-09T10:15:00+00:00", "2026-03-09", None]
    assert sheet.cell(row=2, column=3).number_format == "0.00"
    escaped = [r[0] for r in rows[2:]]
    assert escaped[:5] == ["'" + v for v in DANGEROUS[:5]]
    assert escaped[5] in ("'\rx", "'\nx")  # XML readers turn a lone CR into LF
    assert escaped[6] == "'x"  # NUL cannot be stored in XML: dropped after escaping
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_header_only_when_there_are_no_rows(tmp_path: Path) -> None:
    formats: tuple[FileFormat, ...] = ("csv", "xlsx")
    for fmt in formats:
        with TableWriter(tmp_path, COLUMNS, fmt=fmt) as writer:
            written = writer.finish()
        assert written.rows == 0
        if fmt == "csv":
            assert _lines(written.path) == ",".join(COLUMNS) + "\r\n"
        else:
            sheet = openpyxl.load_workbook(written.path).active
            assert sheet is not None
            assert [list(r) for r in sheet.iter_rows(values_only=True)] == [list(COLUMNS)]


def test_an_error_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="row has 1 cells"), TableWriter(tmp_path, COLUMNS) as w:
        w.write(("only one",))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="already compressed"):
        TableWriter(tmp_path, COLUMNS, fmt="xlsx", compression="gzip")
    assert list(tmp_path.iterdir()) == []


def test_memory_stays_flat_for_many_rows(tmp_path: Path) -> None:
    import tracemalloc

    tracemalloc.start()
    with TableWriter(tmp_path, COLUMNS, compression="gzip") as writer:
        for i in range(50_000):
            writer.write((f"name {i}", i, Decimal(i) / 100, None, None, "x" * 20))
        _, peak = tracemalloc.get_traced_memory()
        written = writer.finish()
    tracemalloc.stop()
    assert written.rows == 50_000
    assert peak < 5 * 1024 * 1024
