"""Value parsers: what each accepts, what it refuses, and with which code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from dropyard.datatypes.values import (
    BadValue,
    ParseContext,
    Parser,
    Price,
    country,
    currency,
    date_time,
    date_window,
    decimal,
    enum,
    gtin,
    integer,
    price,
    spelling_key,
    text,
    url,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CTX = ParseContext(tz=ZoneInfo("America/New_York"), now=NOW)
REASONS = ["CONSUMER_FRAUD", "ITEM_RETURNED", "RESET"]


def refused(parser: Parser[object], value: str, context: ParseContext = CTX) -> BadValue:
    with pytest.raises(BadValue) as caught:
        parser(value, context)
    return caught.value


@pytest.mark.parametrize(
    ("parser", "value", "expected"),
    [
        (text(5), "abcde", "abcde"),
        (text(), "x" * 10_000, "x" * 10_000),
        (integer(), "1001", 1001),
        (integer(), "-7", -7),
        (integer(), "007", 7),
        (integer(min_value=1), "1", 1),
        (integer(), str(2**63 - 1), 2**63 - 1),
        (decimal(8, 2), "59.90", Decimal("59.90")),
        (decimal(8, 2), "59.9", Decimal("59.90")),
        (decimal(8, 2), "59.900", Decimal("59.90")),
        (decimal(8, 2), ".5", Decimal("0.50")),
        (decimal(8, 2), "0", Decimal("0.00")),
        (decimal(8, 2), "999999.99", Decimal("999999.99")),
        (decimal(8, 2, min_value=0), "-0", Decimal("0.00")),
        (decimal(14, 2), "123456789012.34", Decimal("123456789012.34")),
        (currency(), "USD", "USD"),
        (currency(), "eur", "EUR"),
        (country(), "us", "US"),
        (country(), "DE", "DE"),
        (enum(["NEW", "EXISTING"]), "new", "NEW"),
        (enum(["in_stock", "out_of_stock"]), "In Stock", "in_stock"),
        (enum(REASONS, code="INVALID_REASON"), "item_returned", "ITEM_RETURNED"),
        (url(), "https://shop.test/p?id=1#top", "https://shop.test/p?id=1#top"),
        (url(), "HTTP://shop.test:8080/é", "HTTP://shop.test:8080/é"),
        (gtin(), "4006381333931", "4006381333931"),
        (gtin(), "96385074", "96385074"),
        (gtin(), "036000291452", "036000291452"),
        (gtin(), "10012345678902", "10012345678902"),
        (price(), "12.99 USD", Price(Decimal("12.99"), "USD")),
        (price(), "0 eur", Price(Decimal("0.00"), "EUR")),
    ],
)
def test_good_values_parse(parser: Parser[object], value: str, expected: object) -> None:
    assert parser(value, CTX) == expected


@pytest.mark.parametrize(
    ("parser", "value", "code", "reason"),
    [
        (text(5), "abcdef", "VALUE_TOO_LONG", "is longer than 5 characters"),
        (integer(), "12.0", "INVALID_NUMBER", "is not a whole number"),
        (integer(), "1,000", "INVALID_NUMBER", "is not a whole number"),
        (integer(), "1e3", "INVALID_NUMBER", "is not a whole number"),
        (integer(), "x", "INVALID_NUMBER", "is not a whole number"),
        (integer(), "٣", "INVALID_NUMBER", "is not a whole number"),
        (integer(), str(2**63), "INVALID_NUMBER", f"is more than {2**63 - 1}"),
        (integer(), "9" * 5000, "INVALID_NUMBER", "is out of range"),
        (integer(), str(-(2**63) - 1), "INVALID_NUMBER", "is out of range"),
        (integer(min_value=1), "0", "INVALID_NUMBER", "is less than 1"),
        (decimal(8, 2), "abc", "INVALID_NUMBER", "is not a number"),
        (decimal(8, 2), "1e3", "INVALID_NUMBER", "is not a plain number (no exponent)"),
        (decimal(8, 2), "1.5E-2", "INVALID_NUMBER", "is not a plain number (no exponent)"),
        (decimal(8, 2), "NaN", "INVALID_NUMBER", "is not a number"),
        (decimal(8, 2), "inf", "INVALID_NUMBER", "is not a number"),
        (decimal(8, 2), "-Infinity", "INVALID_NUMBER", "is not a number"),
        (decimal(8, 2), "1,000.00", "INVALID_NUMBER", "is not a number"),
        (decimal(8, 2), "59,90", "INVALID_NUMBER", "is not a number (use a point for decimals)"),
        (decimal(8, 2), "1.999", "INVALID_NUMBER", "has more than 2 decimals"),
        (
            decimal(8, 2),
            "1000000",
            "INVALID_NUMBER",
            "is too large (at most 6 digits before the decimal point)",
        ),
        (decimal(8, 2, min_value=0), "-0.01", "INVALID_NUMBER", "is less than 0"),
        (currency(), "US", "INVALID_CURRENCY", "is not an ISO 4217 currency code"),
        (currency(), "XYZ", "INVALID_CURRENCY", "is not an ISO 4217 currency code"),
        (country(), "UK", "INVALID_ENUM", "is not an ISO 3166-1 alpha-2 country code"),
        (country(), "USA", "INVALID_ENUM", "is not an ISO 3166-1 alpha-2 country code"),
        (enum(["NEW", "EXISTING"]), "old", "INVALID_ENUM", "is not one of NEW, EXISTING"),
        (
            enum(REASONS, code="INVALID_REASON"),
            "BORED",
            "INVALID_REASON",
            "is not one of CONSUMER_FRAUD, ITEM_RETURNED, RESET",
        ),
        (url(), "shop.test/p", "INVALID_URL", "is not an absolute http(s) URL"),
        (url(), "ftp://shop.test/p", "INVALID_URL", "is not an absolute http(s) URL"),
        (url(), "https:///p", "INVALID_URL", "is not an absolute http(s) URL"),
        (url(), "javascript:alert(1)", "INVALID_URL", "is not an absolute http(s) URL"),
        (url(), "https://shop.test/a b", "INVALID_URL", "is not a URL (it contains spaces)"),
        (url(), "https://shop.test:99999/", "INVALID_URL", "is not a URL"),
        (url(), "https://s.test/" + "a" * 2040, "INVALID_URL", "is longer than 2048 characters"),
        (gtin(), "4006381333932", "INVALID_GTIN", "has a wrong check digit (expected 1)"),
        (gtin(), "400638133393", "INVALID_GTIN", "has a wrong check digit (expected 0)"),
        (gtin(), "1234567", "INVALID_GTIN", "is not a GTIN (8, 12, 13 or 14 digits)"),
        (gtin(), "40063813339A1", "INVALID_GTIN", "is not a GTIN (8, 12, 13 or 14 digits)"),
        (price(), "12.99", "INVALID_NUMBER", "is not a price like '12.99 USD'"),
        (price(), "USD 12.99", "INVALID_NUMBER", "is not a number"),
        (price(), "12.999 USD", "INVALID_NUMBER", "has more than 2 decimals"),
        (price(), "-1 USD", "INVALID_NUMBER", "is less than 0"),
        (price(), "12.99 DOLLARS", "INVALID_CURRENCY", "has 'DOLLARS', not an ISO 4217 currency"),
    ],
)
def test_bad_values_are_refused_with_their_code(
    parser: Parser[object], value: str, code: str, reason: str
) -> None:
    error = refused(parser, value)
    assert (error.code, error.reason) == (code, reason)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20T10:15:00Z", datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
        ("2026-11-20T10:15:00.123456z", datetime(2026, 11, 20, 10, 15, 0, 123456, tzinfo=UTC)),
        ("2026-11-20T10:15:00+01:00", datetime(2026, 11, 20, 9, 15, tzinfo=UTC)),
        ("2026-11-20T10:15:00,5+01", datetime(2026, 11, 20, 9, 15, 0, 500000, tzinfo=UTC)),
        ("2026-11-20T10:15:00-0500", datetime(2026, 11, 20, 15, 15, tzinfo=UTC)),
        ("2026-11-20 10:15", datetime(2026, 11, 20, 15, 15, tzinfo=UTC)),  # New York, EST
        ("2026-07-01T10:15:00", datetime(2026, 7, 1, 14, 15, tzinfo=UTC)),  # EDT
        ("2026-11-20", datetime(2026, 11, 20, 5, 0, tzinfo=UTC)),
    ],
)
def test_dates_read_iso_8601_and_the_account_time_zone(value: str, expected: datetime) -> None:
    parsed = date_time()(value, CTX)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "2026-13-01",
        "2026-02-30",
        "20261120",
        "2026-W47-5",
        "2026-11-20T25:00",
        "11/20/2026",
        "2026-11-20T10:15:00+25:00",
        "0000-01-01",
        "yesterday",
        "2026-11-20T10",
    ],
)
def test_other_dates_are_refused(value: str) -> None:
    error = refused(date_time(), value)
    assert (error.code, error.reason) == ("INVALID_DATE", "is not a date")


def test_the_date_window_refuses_the_future_and_the_too_old() -> None:
    window = date_window(max_age_days=88)
    window(NOW + timedelta(minutes=5), CTX)
    window(NOW - timedelta(days=88), CTX)
    future = refused(lambda v, c: window(v, c), NOW + timedelta(minutes=6))  # type: ignore[arg-type]
    assert (future.code, future.reason) == ("FUTURE_DATE", "is more than 5 minutes in the future")
    old = refused(lambda v, c: window(v, c), NOW - timedelta(days=89))  # type: ignore[arg-type]
    assert (old.code, old.reason) == ("DATE_TOO_OLD", "is older than 88 days")


def test_the_account_window_in_the_context_wins_over_the_default() -> None:
    window = date_window(max_age_days=88)
    wide = ParseContext(tz=UTC, now=NOW, max_age_days=398)
    window(NOW - timedelta(days=200), wide)
    with pytest.raises(BadValue) as caught:
        window(NOW - timedelta(days=399), wide)
    assert caught.value.reason == "is older than 398 days"


def test_a_context_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ParseContext(tz=UTC, now=datetime(2026, 1, 1))


def test_enum_values_that_collide_are_a_declaration_error() -> None:
    with pytest.raises(ValueError, match="collide"):
        enum(["in_stock", "In Stock"])


def test_spellings_match_like_headers() -> None:
    assert spelling_key(" event_date ") == spelling_key("EventDate") == spelling_key("Event Date")
    assert spelling_key("EventDate") != spelling_key("Event-Date")
