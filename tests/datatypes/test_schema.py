"""Declared columns and rules: header matching, file-level and row-level errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from dropyard.datatypes import values as v
from dropyard.datatypes.readers import FileRejected, RawRow, RowError
from dropyard.datatypes.schema import Column, ParseContext, Schema, ValidRow
from tests.datatypes.helpers import read

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CTX = ParseContext(tz=ZoneInfo("Europe/Berlin"), now=NOW, max_age_days=88)

CONVERSIONS = Schema(
    columns=[
        Column("CampaignId", True, v.integer(min_value=1)),
        Column("EventDate", True, v.date_time(), rules=(v.date_window(max_age_days=88),)),
        Column("OrderId", True, v.text(), max_length=64),
        Column("ClickId", "group", v.text(128)),
        Column("MediaPartnerId", "group", v.integer(min_value=1)),
        Column("CurrencyCode", True, v.currency()),
        Column("Amount", "group", v.decimal(8, 2, min_value=0)),
        Column("ItemPrice", "group", v.decimal(8, 2, min_value=0)),
        Column("ItemSubtotal", "group", v.decimal(14, 2, min_value=0)),
        Column("Quantity", False, v.integer(min_value=1), default=1),
        Column("CustomerStatus", False, v.enum(["NEW", "EXISTING"])),
    ],
    one_of=[("ClickId", "MediaPartnerId")],
    exactly_one_of=[("Amount", "ItemPrice", "ItemSubtotal")],
)
HEADER = ["CampaignId", "EventDate", "OrderId", "ClickId", "CurrencyCode", "Amount"]


def row(*fields: str, line: int = 2) -> RawRow:
    return RawRow(line, list(fields), ",".join(fields))


def errors_of(result: ValidRow | list[RowError]) -> list[tuple[str, str | None, str]]:
    assert isinstance(result, list), result
    return [(e.code, e.column, e.message) for e in result]


def refused(schema: Schema, header: list[str]) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        schema.bind(header, context=CTX)
    return caught.value


@pytest.mark.parametrize(
    "spelling", ["EventDate", "event_date", "Event Date", " EVENTDATE ", "event date", "Event_Date"]
)
def test_header_names_match_whatever_their_spelling(spelling: str) -> None:
    header = [spelling if h == "EventDate" else h for h in HEADER]
    bound = CONVERSIONS.bind(header, context=CTX)
    checked = bound.validate(row("1001", "2026-11-20T10:15:00Z", "ORD-1", "clk", "USD", "5"))
    assert isinstance(checked, ValidRow)
    assert checked.values["EventDate"] == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)


def test_missing_columns_fail_the_file_by_their_canonical_names() -> None:
    error = refused(CONVERSIONS, ["campaign_id", "Order Id", "Amount"])
    assert error.code == "MISSING_COLUMNS"
    assert error.message == ("missing columns: EventDate, CurrencyCode, ClickId or MediaPartnerId")


def test_a_misspelt_column_is_reported_missing_with_a_hint() -> None:
    error = refused(CONVERSIONS, [h if h != "EventDate" else "EventDat" for h in HEADER])
    assert error.code == "MISSING_COLUMNS"
    assert error.message == "missing columns: EventDate (the file has unknown columns 'EventDat')"


def test_a_group_needs_one_of_its_columns_in_the_header() -> None:
    error = refused(CONVERSIONS, HEADER[:-1])
    assert error.message == "missing columns: Amount or ItemPrice or ItemSubtotal"


def test_unknown_columns_fail_the_file_unless_extra_columns_are_allowed() -> None:
    header = [*HEADER, "Coupon", "Note"]
    error = refused(CONVERSIONS, header)
    assert error.code == "UNKNOWN_COLUMNS"
    assert error.message.startswith("unknown columns: 'Coupon', 'Note'")
    relaxed = replace(CONVERSIONS, allow_extra=True).bind(header, context=CTX)
    checked = relaxed.validate(row("1", "2026-11-20", "O", "c", "USD", "5", "X", "Y"))
    assert isinstance(checked, ValidRow)
    assert "Coupon" not in checked.values


def test_blank_header_cells_from_a_trailing_delimiter_are_ignored() -> None:
    bound = CONVERSIONS.bind([*HEADER, ""], context=CTX)
    assert isinstance(bound.validate(row("1", "2026-11-20", "O", "c", "USD", "5", "")), ValidRow)


def test_a_column_given_twice_fails_the_file() -> None:
    error = refused(CONVERSIONS, [*HEADER, "order_id"])
    assert error.code == "UNKNOWN_COLUMNS"
    assert "OrderId appears twice" in error.message


def test_a_valid_row_has_typed_values_and_defaults() -> None:
    bound = CONVERSIONS.bind(HEADER, context=CTX)
    checked = bound.validate(row(" 1001 ", "2026-11-20 10:15", "ORD-1", "clk-9", "usd", "59.9"))
    assert isinstance(checked, ValidRow)
    assert checked.values == {
        "CampaignId": 1001,
        "EventDate": datetime(2026, 11, 20, 9, 15, tzinfo=UTC),  # Berlin, UTC+1
        "OrderId": "ORD-1",
        "ClickId": "clk-9",
        "MediaPartnerId": None,
        "CurrencyCode": "USD",
        "Amount": Decimal("59.90"),
        "ItemPrice": None,
        "ItemSubtotal": None,
        "Quantity": 1,
        "CustomerStatus": None,
    }
    assert checked.require("Amount", Decimal) == Decimal("59.90")
    assert checked.get("MediaPartnerId", int) is None
    with pytest.raises(TypeError):
        checked.get("OrderId", int)
    assert checked.line == 2
    assert checked.fields[0] == " 1001 "


def test_every_error_of_a_row_is_reported_naming_column_and_value() -> None:
    bound = CONVERSIONS.bind([*HEADER, "ItemPrice", "CustomerStatus"], context=CTX)
    long_order = "O" * 150
    checked = bound.validate(
        row("abc", "2026-13-01", long_order, "", "XYZ", "10", "5", "old", line=14)
    )
    assert errors_of(checked) == [
        ("INVALID_NUMBER", "CampaignId", "CampaignId 'abc' is not a whole number"),
        ("INVALID_DATE", "EventDate", "EventDate '2026-13-01' is not a date"),
        (
            "VALUE_TOO_LONG",
            "OrderId",
            f"OrderId '{'O' * 100}…' is longer than 64 characters",
        ),
        ("INVALID_CURRENCY", "CurrencyCode", "CurrencyCode 'XYZ' is not an ISO 4217 currency code"),
        ("INVALID_ENUM", "CustomerStatus", "CustomerStatus 'old' is not one of NEW, EXISTING"),
        ("MISSING_REQUIRED", None, "ClickId or MediaPartnerId is required"),
        (
            "AMBIGUOUS_AMOUNT",
            None,
            "Amount '10' and ItemPrice '5' are given; send only one of Amount, ItemPrice, "
            "ItemSubtotal",
        ),
    ]
    assert all(error.line == 14 for error in checked)  # type: ignore[union-attr]


def test_empty_fields_are_missing() -> None:
    bound = CONVERSIONS.bind(HEADER, context=CTX)
    checked = bound.validate(row("1", "  ", "", "c", "USD", ""))
    assert errors_of(checked) == [
        ("MISSING_REQUIRED", "EventDate", "EventDate is missing"),
        ("MISSING_REQUIRED", "OrderId", "OrderId is missing"),
        ("MISSING_REQUIRED", None, "one of Amount, ItemPrice, ItemSubtotal is required"),
    ]


def test_date_rules_use_the_context() -> None:
    bound = CONVERSIONS.bind(HEADER, context=CTX)
    future = (NOW + timedelta(hours=1)).isoformat()
    old = (NOW - timedelta(days=100)).date().isoformat()
    assert errors_of(bound.validate(row("1", future, "O", "c", "USD", "1"))) == [
        ("FUTURE_DATE", "EventDate", f"EventDate '{future}' is more than 5 minutes in the future")
    ]
    assert errors_of(bound.validate(row("1", old, "O", "c", "USD", "1"))) == [
        ("DATE_TOO_OLD", "EventDate", f"EventDate '{old}' is older than 88 days")
    ]


def test_rows_the_reader_rejected_keep_their_error() -> None:
    bound = CONVERSIONS.bind(HEADER, context=CTX)
    error = RowError(3, "BAD_ENCODING", None, "line 3 is not valid UTF-8")
    assert bound.validate(RawRow(3, None, "x", error)) == [error]
    short = bound.validate(row("1", "2"))
    assert errors_of(short) == [("MALFORMED_ROW", None, "line 2 has 2 fields, the header has 6")]


def _sale_price_at_most_price(values: Mapping[str, object], ctx: ParseContext) -> None:
    price, sale = values["price"], values["sale_price"]
    if isinstance(price, v.Price) and isinstance(sale, v.Price) and sale.amount > price.amount:
        raise v.BadValue("INVALID_NUMBER", "sale_price is more than price", column="sale_price")


CATALOG = Schema(
    columns=[
        Column("id", True, v.text(50)),
        Column("ActionId", "group", v.integer()),
        Column("OrderId", "group", v.text(64)),
        Column("ActionTrackerId", "group", v.integer()),
        Column("price", True, v.price()),
        Column("sale_price", False, v.price()),
    ],
    one_of=[("ActionId", ("OrderId", "ActionTrackerId"))],
    row_rules=[_sale_price_at_most_price],
)


def test_a_group_alternative_may_need_several_columns() -> None:
    bound = CATALOG.bind(["id", "ActionId", "OrderId", "ActionTrackerId", "price"], context=CTX)
    assert isinstance(bound.validate(row("a", "", "O-1", "7", "1 USD")), ValidRow)
    assert isinstance(bound.validate(row("a", "9", "", "", "1 USD")), ValidRow)
    assert errors_of(bound.validate(row("a", "", "O-1", "", "1 USD"))) == [
        ("MISSING_REQUIRED", None, "ActionId or OrderId + ActionTrackerId is required")
    ]
    error = refused(CATALOG, ["id", "OrderId", "price"])
    assert error.message == "missing columns: ActionId or OrderId + ActionTrackerId"


def test_row_rules_run_once_the_columns_parse() -> None:
    bound = CATALOG.bind(["id", "ActionId", "price", "sale_price"], context=CTX)
    assert errors_of(bound.validate(row("a", "1", "10 USD", "12 USD"))) == [
        ("INVALID_NUMBER", "sale_price", "sale_price is more than price")
    ]
    assert errors_of(bound.validate(row("a", "1", "x", "12 USD"))) == [
        ("INVALID_NUMBER", "price", "price 'x' is not a price like '12.99 USD'")
    ]


def test_declarations_are_checked_when_the_schema_is_made() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        Schema(columns=[Column("OrderId", True, v.text()), Column("order_id", True, v.text())])
    with pytest.raises(ValueError, match="undeclared"):
        Schema(columns=[Column("A", "group", v.text())], one_of=[("A", "B")])
    with pytest.raises(ValueError, match="in none"):
        Schema(columns=[Column("A", "group", v.text())])


def test_a_file_reads_and_validates_end_to_end() -> None:
    data = (
        b"CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CustomerId,CurrencyCode,"
        b"Amount,Category,Sku,Quantity\n"
        b"1001,5001,2026-11-20T10:15:00Z,ORD-1,clk-9f2a,cust-7,USD,59.90,Shoes,SKU-1,1\n"
        b"1001,5001,2026-11-20T10:15:00Z,ORD-2,clk-9f2a,cust-7,USD,1e3,Shoes,SKU-1,1\n"
    )
    header, rows = read(data)
    bound = replace(CONVERSIONS, allow_extra=True).bind(header, context=CTX)
    first, second = (bound.validate(r) for r in rows)
    assert isinstance(first, ValidRow)
    assert first.values["Amount"] == Decimal("59.90")
    assert errors_of(second) == [
        ("INVALID_NUMBER", "Amount", "Amount '1e3' is not a plain number (no exponent)")
    ]
