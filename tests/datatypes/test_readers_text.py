"""Delimited text: encodings, line endings, delimiters, quoting, limits, memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from dropyard.datatypes.readers import FileRejected, Limits
from dropyard.errors import Terminal
from tests.datatypes.helpers import bad, good, read, table

CSV = b"CampaignId,OrderId,Amount\n1001,ORD-1,59.90\n1002,ORD-2,10\n"
ROWS = [(2, ["1001", "ORD-1", "59.90"]), (3, ["1002", "ORD-2", "10"])]


def test_a_plain_csv_gives_its_header_and_rows() -> None:
    opened = table(CSV)
    assert opened.header == ["CampaignId", "OrderId", "Amount"]
    assert opened.delimiter == ","
    rows = list(opened.rows)
    assert good(rows) == ROWS
    assert rows[0].raw == "1001,ORD-1,59.90"
    assert rows[0].error is None


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n  \r\n", b"\xef\xbb\xbf", b"\xff\xfe", b"\xef\xbb\xbf\r\n \t\n"],
    ids=["nothing", "blank lines", "utf-8 bom only", "utf-16 bom only", "bom and blanks"],
)
def test_a_file_without_a_header_is_empty(data: bytes) -> None:
    with pytest.raises(FileRejected) as rejected:
        read(data)
    assert rejected.value.code == "EMPTY_FILE"
    assert isinstance(rejected.value, Terminal)


def test_a_header_only_file_is_a_table_without_rows() -> None:
    header, rows = read(b"CampaignId,OrderId\r\n")
    assert header == ["CampaignId", "OrderId"]
    assert rows == []


def test_the_header_is_the_first_non_empty_line() -> None:
    header, rows = read(b"\n\r\n  \nA,B\n1,2\n")
    assert header == ["A", "B"]
    assert good(rows) == [(5, ["1", "2"])]


def test_utf8_with_and_without_bom_read_the_same() -> None:
    text = "Name,City\nZoë,Zürich\n".encode()
    assert read(text) == read(b"\xef\xbb\xbf" + text)
    assert good(read(text)[1]) == [(2, ["Zoë", "Zürich"])]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_a_bom_is_read_in_either_byte_order(codec: str) -> None:
    bom = b"\xff\xfe" if codec.endswith("le") else b"\xfe\xff"
    text = 'Name\tCity\r\nZoë\t東京\r\n\r\nA"x\tB\rC\tD\n'
    header, rows = read(bom + text.encode(codec))
    assert header == ["Name", "City"]
    assert good(rows) == [(2, ["Zoë", "東京"]), (4, ['A"x', "B"]), (5, ["C", "D"])]


def test_utf16_with_a_lone_surrogate_fails_that_row_only() -> None:
    data = b"\xff\xfe" + "a,b\n1,2\n".encode("utf-16-le") + b"\x00\xd8,\x00x\x00\n\x00"
    data += "3,4\n".encode("utf-16-le")
    _, rows = read(data)
    assert good(rows) == [(2, ["1", "2"]), (4, ["3", "4"])]
    assert bad(rows) == [(3, "BAD_ENCODING")]


def test_utf16_without_a_bom_is_refused_with_a_hint() -> None:
    with pytest.raises(FileRejected) as rejected:
        read("a,b\n1,2\n".encode("utf-16-le"))
    assert rejected.value.code == "UNSUPPORTED_FORMAT"
    assert "byte order mark" in rejected.value.message


def test_utf32_is_refused() -> None:
    with pytest.raises(FileRejected) as rejected:
        read("a,b\n".encode("utf-32"))
    assert rejected.value.code == "UNSUPPORTED_FORMAT"
    assert "UTF-32" in rejected.value.message


def test_latin1_rows_in_a_utf8_file_fail_alone_with_bad_encoding() -> None:
    data = "Name,City\nZoë,Zürich\n".encode() + "Zoë,Zürich\nAl,Köln\n".encode("latin-1")
    data += b"Bo,Bern\n"
    _, rows = read(data)
    assert good(rows) == [(2, ["Zoë", "Zürich"]), (5, ["Bo", "Bern"])]
    assert bad(rows) == [(3, "BAD_ENCODING"), (4, "BAD_ENCODING")]
    first = rows[1]
    assert first.fields is None
    assert first.error is not None
    assert first.error.message.startswith("line 3 is not valid UTF-8")
    assert first.raw == "Zo\\xeb,Z\\xfcrich"  # the bytes as sent, visibly


def test_a_nul_byte_fails_its_row_with_bad_encoding() -> None:
    _, rows = read(b"a,b\n1,\x002\n3,4\n")
    assert bad(rows) == [(2, "BAD_ENCODING")]
    assert good(rows) == [(3, ["3", "4"])]
    assert rows[0].error is not None
    assert "NUL" in rows[0].error.message
    assert "\x00" not in rows[0].raw


def test_mixed_line_endings_all_end_lines() -> None:
    _, rows = read(b"a,b\r\n1,2\n3,4\r5,6\r\n\r7,8")
    assert good(rows) == [(2, ["1", "2"]), (3, ["3", "4"]), (4, ["5", "6"]), (6, ["7", "8"])]


def test_a_crlf_split_across_read_chunks_is_one_line_end() -> None:
    head = b"a,b\n" + b"x" * (65536 - 4 - 2) + b",\r"
    header, rows = read(head + b"\n1,2\r")
    assert header == ["a", "b"]
    assert [r.line for r in rows] == [2, 3]


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
def test_the_delimiter_is_detected_from_the_header(delimiter: str) -> None:
    others = "".join(d for d in ",\t|;" if d != delimiter)
    text = delimiter.join(["Id", "Name", "Note"]) + "\n"
    text += delimiter.join(["1", f"a{others}b", '"x' + delimiter + 'y"']) + "\n"
    opened = table(text.encode())
    assert opened.delimiter == delimiter
    assert good(list(opened.rows)) == [(2, ["1", f"a{others}b", f"x{delimiter}y"])]


def test_quoted_fields_hold_delimiters_doubled_quotes_and_newlines() -> None:
    data = (
        b'Id,Title,Note\n1,"Shoes, red","say ""hi"""\n'
        b'2,"two\nlines\r\nand three",x\n'
        b'3,"",""""\n'
        b'4,"ends, \n",y\n'
    )
    _, rows = read(data)
    assert good(rows) == [
        (2, ["1", "Shoes, red", 'say "hi"']),
        (3, ["2", "two\nlines\r\nand three", "x"]),
        (6, ["3", "", '"']),
        (7, ["4", "ends, \n", "y"]),
    ]
    assert rows[1].raw == '2,"two\nlines\r\nand three",x'


def test_a_quote_inside_an_unquoted_field_is_a_plain_character() -> None:
    _, rows = read(b'Id,Size\n1,5" screen\n2,7"\n')
    assert good(rows) == [(2, ["1", '5" screen']), (3, ["2", '7"'])]


def test_an_unclosed_quote_fails_the_row_at_the_end_of_the_file() -> None:
    _, rows = read(b'a,b\n1,2\n3,"open\n4,5\n')
    assert good(rows) == [(2, ["1", "2"])]
    assert bad(rows) == [(3, "MALFORMED_ROW")]
    assert rows[1].error is not None
    assert "not closed" in rows[1].error.message


def test_a_wrong_number_of_fields_is_a_malformed_row() -> None:
    _, rows = read(b"a,b,c\n1,2\n1,2,3\n1,2,3,4\n")
    assert bad(rows) == [(2, "MALFORMED_ROW"), (4, "MALFORMED_ROW")]
    assert good(rows) == [(3, ["1", "2", "3"])]
    assert rows[0].error is not None
    assert rows[0].error.message == "line 2 has 2 fields, the header has 3"
    assert rows[0].fields is None
    assert rows[0].raw == "1,2"


def test_lines_of_only_delimiters_are_skipped_like_empty_lines() -> None:
    _, rows = read(b"a,b,c\n,,\n1,2,3\n ; \n,,,,\n")
    assert good(rows) == [(3, ["1", "2", "3"])]
    assert bad(rows) == [(4, "MALFORMED_ROW")]


def test_a_row_over_the_size_limit_is_malformed_and_reading_goes_on() -> None:
    limits = Limits(max_row_bytes=64)
    data = b"a,b\n1," + b"x" * 200 + b'\n2,y\n3,"' + b"q\n" * 40 + b'"\n4,z\n'
    _, rows = read(data, limits=limits)
    assert bad(rows) == [(2, "MALFORMED_ROW"), (4, "MALFORMED_ROW")]
    assert good(rows) == [(3, ["2", "y"]), (45, ["4", "z"])]
    assert len(rows[0].raw) == 64
    assert rows[0].error is not None
    assert "longer than 64 bytes" in rows[0].error.message


def test_a_100_mb_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    with path.open("wb") as out:
        out.write(b"a,b\n1,")
        block = b"x" * (1 << 20)
        for _ in range(100):
            out.write(block)
        out.write(b"\r\n2,after\n")
    tracemalloc.start()
    try:
        _, rows = read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert bad(rows) == [(2, "MALFORMED_ROW")]
    assert good(rows) == [(3, ["2", "after"])]
    assert len(rows[0].raw) <= Limits().max_row_bytes
    assert peak < 8 << 20


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    row = b"1001,5001,2026-11-20T10:15:00Z,ORD-%08d,clk-9f2a,USD,59.90," + b"n" * 3990 + b"\n"
    with path.open("wb") as out:
        out.write(b"CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,Cur,Amount,Note\n")
        for number in range(12_500):
            out.write(row % number)
    assert path.stat().st_size > 50_000_000
    tracemalloc.start()
    try:
        count = sum(1 for r in table(path).rows if r.fields is not None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 12_500
    assert peak < 20 << 20


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (b"BZh91AY&SY\x00\x00", "bzip2"),
        (b"\xfd7zXZ\x00\x00\x04", "xz"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", ".xls"),
    ],
)
def test_other_binary_formats_are_refused_by_their_content(data: bytes, label: str) -> None:
    with pytest.raises(FileRejected) as rejected:
        read(data, name="upload.csv")
    assert rejected.value.code == "UNSUPPORTED_FORMAT"
    assert label in rejected.value.message


def test_a_stream_that_cannot_seek_is_read_too() -> None:
    assert good(read(CSV, seekable=False)[1]) == ROWS


def test_closing_a_table_early_releases_it() -> None:
    opened = table(CSV)
    first = next(iter(opened))
    opened.close()
    assert first.line == 2
    assert list(opened.rows) == []


def test_a_header_over_the_row_limit_fails_the_file() -> None:
    with pytest.raises(FileRejected) as rejected:
        read(b"a," * 100 + b"b\n1,2\n", limits=Limits(max_row_bytes=64))
    assert rejected.value.code == "UNSUPPORTED_FORMAT"
    assert "longer than 64 bytes" in rejected.value.message
