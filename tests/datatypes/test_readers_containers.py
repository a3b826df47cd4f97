"""Containers: gzip, zip and xlsx, and the expansion limits that stop bombs early."""

from __future__ import annotations

import gzip
import io
import struct
import time
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from dropyard.datatypes.readers import FileRejected, Limits, open_table
from tests.datatypes.helpers import CountingFile, bad, good, read, table

CSV = b"CampaignId,OrderId,Amount\n1001,ORD-1,59.90\n1002,ORD-2,10\n"
ROWS = [(2, ["1001", "ORD-1", "59.90"]), (3, ["1002", "ORD-2", "10"])]
MiB = 1 << 20


def zipped(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def rejected(
    data: bytes | Path,
    *,
    name: str = "upload.zip",
    limits: Limits | None = None,
    allow_xlsx: bool = False,
) -> FileRejected:
    """The file-level error, whether opening or reading the rows raises it."""
    with pytest.raises(FileRejected) as caught:
        read(data, name=name, limits=limits, allow_xlsx=allow_xlsx)
    return caught.value


def zeros_gzip(path: Path, megabytes: int) -> Path:
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        out.write(b"a,b\n")
        block = bytes(MiB)
        for _ in range(megabytes):
            out.write(block)
    return path


def zeros_zip(path: Path, megabytes: int) -> Path:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("data.csv", "w", force_zip64=True) as out,
    ):
        out.write(b"a,b\n")
        block = b"0" * MiB
        for _ in range(megabytes):
            out.write(block)
    return path


# -- gzip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["upload.csv.gz", "upload.csv"])
def test_gzip_is_read_by_its_magic_bytes_whatever_the_name(name: str) -> None:
    _, rows = read(gzip.compress(CSV), name=name)
    assert good(rows) == ROWS


def test_an_empty_gzip_is_an_empty_file() -> None:
    assert rejected(gzip.compress(b"")).code == "EMPTY_FILE"


def test_a_gzip_holding_an_archive_is_refused() -> None:
    error = rejected(gzip.compress(zipped(("a.csv", CSV))))
    assert error.code == "UNSUPPORTED_FORMAT"
    assert "nested" in error.message
    assert rejected(gzip.compress(gzip.compress(CSV))).code == "UNSUPPORTED_FORMAT"


def test_a_cut_short_gzip_fails_the_file() -> None:
    body = gzip.compress(CSV * 2000)
    error = rejected(body[: len(body) // 2])
    assert error.code == "UNSUPPORTED_FORMAT"
    assert "cut short" in error.message


def read_counting(path: Path) -> tuple[FileRejected, int]:
    """The file-level error, and how many bytes of the stored file were read for it."""
    counter = [0]
    opener = lambda: CountingFile(path, counter)  # noqa: E731
    with pytest.raises(FileRejected) as caught:
        list(open_table(opener, name=path.name, limits=Limits(), allow_xlsx=False).rows)  # type: ignore[arg-type]
    return caught.value, counter[0]


def test_a_gzip_bomb_is_stopped_while_streaming(tmp_path: Path) -> None:
    bomb = zeros_gzip(tmp_path / "bomb.csv.gz", 200)
    started = time.monotonic()
    error, consumed = read_counting(bomb)
    assert error.code == "DECOMPRESSION_LIMIT"
    assert "nothing was imported" in error.message
    assert consumed < bomb.stat().st_size / 4  # inflated about 20× the file, not 200 MB
    assert time.monotonic() - started < 10


def test_the_absolute_expansion_limit_applies_too() -> None:
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 4000)  # compresses about 200×
    limits = Limits(max_ratio=1000, max_expanded_bytes=10_000)
    assert rejected(data, limits=limits).code == "DECOMPRESSION_LIMIT"
    assert len(read(data, limits=Limits(max_ratio=1000))[1]) == 4000


# -- zip ------------------------------------------------------------------------------------


def test_every_zip_entry_is_read_in_order_with_its_own_header() -> None:
    second = b"\xef\xbb\xbfCampaignId;OrderId;Amount\r\n1003;ORD-3;7\r\n"
    header, rows = read(zipped(("a.csv", CSV), ("b.csv", second)), name="upload.zip")
    assert header == ["CampaignId", "OrderId", "Amount"]
    assert [(r.part, r.fields) for r in rows] == [
        ("a.csv", ["1001", "ORD-1", "59.90"]),
        ("a.csv", ["1002", "ORD-2", "10"]),
        ("b.csv", ["1003", "ORD-3", "7"]),
    ]
    assert len({r.line for r in rows}) == 3  # unique across entries: b.csv's line 2 is 5


def test_zip_entries_may_order_or_spell_columns_differently() -> None:
    second = b"amount,order_id,campaign id\n7,ORD-3,1003\n"
    _, rows = read(zipped(("a.csv", CSV), ("b.csv", second)))
    assert rows[-1].fields == ["1003", "ORD-3", "7"]


def test_zip_entries_with_other_columns_fail_the_file() -> None:
    fewer = rejected(zipped(("a.csv", CSV), ("b.csv", b"CampaignId,OrderId\n1,2\n")))
    assert fewer.code == "MISSING_COLUMNS"
    assert "Amount" in fewer.message
    more = rejected(zipped(("a.csv", CSV), ("b.csv", b"CampaignId,OrderId,Amount,X\n")))
    assert more.code == "UNKNOWN_COLUMNS"
    assert "X" in more.message


def test_a_bad_row_in_a_later_entry_names_the_entry() -> None:
    _, rows = read(zipped(("a.csv", CSV), ("b.csv", b"CampaignId,OrderId,Amount\n1,2\n")))
    assert bad(rows) == [(5, "MALFORMED_ROW")]
    assert rows[-1].error is not None
    assert "line 2 of 'b.csv'" in rows[-1].error.message


def test_empty_entries_and_macos_metadata_are_skipped() -> None:
    data = zipped(
        ("empty.csv", b""),
        ("a.csv", CSV),
        ("__MACOSX/._a.csv", b"\x00\x05\x16\x07binary"),
        ("folder/.DS_Store", b"\x00\x00\x00\x01Bud1"),
    )
    assert good(read(data)[1]) == ROWS


def test_an_empty_zip_is_an_empty_file() -> None:
    assert rejected(zipped()).code == "EMPTY_FILE"
    assert rejected(zipped(("a.csv", b""), ("b.csv", b"\n"))).code == "EMPTY_FILE"


def test_a_zip_of_folders_only_is_refused() -> None:
    error = rejected(zipped(("folder/", b""), ("folder/inner/", b"")))
    assert error.code == "UNSUPPORTED_FORMAT"
    assert "no files" in error.message


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("inner.zip", "archive"),
        ("inner.csv.gz", "archive"),
        ("../evil.csv", "'..'"),
        ("ok/../../evil.csv", "'..'"),
        ("/etc/evil.csv", "absolute"),
        ("C:/evil.csv", "absolute"),
    ],
)
def test_nested_archives_and_escaping_paths_are_refused(entry: str, why: str) -> None:
    inner = {"inner.zip": zipped(("x.csv", CSV)), "inner.csv.gz": gzip.compress(CSV)}
    error = rejected(zipped(("a.csv", CSV), (entry, inner.get(entry, CSV))))
    assert error.code == "UNSUPPORTED_FORMAT"
    assert why in error.message


def test_links_in_a_zip_are_refused() -> None:
    link = zipfile.ZipInfo("a.csv")
    link.create_system = 3
    link.external_attr = 0o120777 << 16
    error = rejected(zipped((link, b"/etc/passwd")))
    assert error.code == "UNSUPPORTED_FORMAT"
    assert "link" in error.message


def test_a_zip_bomb_is_refused_before_anything_is_inflated(tmp_path: Path) -> None:
    bomb = zeros_zip(tmp_path / "bomb.zip", 200)
    started = time.monotonic()
    error, consumed = read_counting(bomb)
    assert error.code == "DECOMPRESSION_LIMIT"
    assert consumed < 64 * 1024  # the central directory, not the data
    assert time.monotonic() - started < 10


def test_a_zip_that_understates_its_sizes_is_stopped_at_the_stated_size(tmp_path: Path) -> None:
    data = bytearray(zeros_zip(tmp_path / "liar.zip", 20).read_bytes())
    central = data.rfind(b"PK\x01\x02")
    for offset in (central + 24, 22):  # uncompressed size: central directory, local header
        struct.pack_into("<I", data, offset, 1000)
    liar = tmp_path / "liar-patched.zip"
    liar.write_bytes(bytes(data))
    error, consumed = read_counting(liar)
    assert error.code == "UNSUPPORTED_FORMAT"
    assert "corrupt" in error.message
    assert consumed < len(data) / 4


def test_a_zip_from_a_stream_that_cannot_seek_is_read() -> None:
    assert good(read(zipped(("a.csv", CSV)), seekable=False)[1]) == ROWS


def test_a_broken_zip_is_refused() -> None:
    assert rejected(b"PK\x03\x04" + b"\x00" * 100).code == "UNSUPPORTED_FORMAT"


# -- xlsx -----------------------------------------------------------------------------------


def workbook(*rows: list[object]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    book.create_sheet("Second").append(["ignored"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_the_first_sheet_of_a_workbook_reads_as_typed_text() -> None:
    data = workbook(
        ["id", "price", "count", "when", "day", "flag", "note"],
        ["A-1", 12.99, 3.0, datetime(2026, 11, 20, 10, 15), date(2026, 11, 20), True, None],
        [],
        [7, 0.3, 10**15, None, None, False, 'x, "y"'],
        [None, Decimal("1.50"), 1e-7, None, None, None, None, None],
    )
    opened = table(data, name="feed.xlsx", allow_xlsx=True)
    assert opened.header == ["id", "price", "count", "when", "day", "flag", "note"]
    rows = list(opened.rows)
    assert good(rows) == [
        (2, ["A-1", "12.99", "3", "2026-11-20T10:15:00", "2026-11-20", "TRUE", ""]),
        (4, ["7", "0.3", "1000000000000000", "", "", "FALSE", 'x, "y"']),
        (5, ["", "1.5", "0.0000001", "", "", "", ""]),
    ]
    assert rows[1].raw == '7,0.3,1000000000000000,,,FALSE,"x, ""y"""'


def test_a_workbook_row_wider_than_its_header_is_malformed() -> None:
    _, rows = read(workbook(["a", "b"], [1, 2, 3], [4]), allow_xlsx=True)
    assert bad(rows) == [(2, "MALFORMED_ROW")]
    assert good(rows) == [(3, ["4", ""])]


def test_workbooks_are_refused_where_the_data_type_takes_text_only() -> None:
    error = rejected(workbook(["a"], [1]), name="feed.xlsx")
    assert error.code == "UNSUPPORTED_FORMAT"
    assert "Excel" in error.message


def test_an_empty_workbook_is_an_empty_file() -> None:
    assert rejected(workbook(), allow_xlsx=True).code == "EMPTY_FILE"


def test_a_broken_workbook_is_refused() -> None:
    data = zipped(("[Content_Types].xml", b"<nope"), ("xl/workbook.xml", b"<nope"))
    assert rejected(data, allow_xlsx=True).code == "UNSUPPORTED_FORMAT"


def test_a_gzip_from_a_stream_that_cannot_seek_is_read_within_limits() -> None:
    assert good(read(gzip.compress(CSV), seekable=False)[1]) == ROWS
    bomb = gzip.compress(b"a,b\n" + bytes(4 * MiB))
    with pytest.raises(FileRejected) as caught:
        read(bomb, seekable=False)
    assert caught.value.code == "DECOMPRESSION_LIMIT"
