"""Value parsers for inbound fields, and the row-level error vocabulary.

A parser turns one field's text (already stripped, never empty) into a typed value, or
raises `BadValue(code, reason)`. The reason completes a sentence that the schema starts
with the column and the value: `EventDate '2026-13-01'` + `is not a date`. Rules are
checks on an already parsed value (`date_window`). Codes are those of formats/results.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Literal, TypeAlias, TypeVar
from urllib.parse import urlsplit

from dropyard.datatypes.currencies import ISO_3166_ALPHA2, ISO_4217

RowCode = Literal[
    "MISSING_REQUIRED",
    "MALFORMED_ROW",
    "BAD_ENCODING",
    "VALUE_TOO_LONG",
    "INVALID_NUMBER",
    "INVALID_DATE",
    "FUTURE_DATE",
    "DATE_TOO_OLD",
    "INVALID_CURRENCY",
    "INVALID_URL",
    "INVALID_ENUM",
    "INVALID_GTIN",
    "UNKNOWN_CAMPAIGN",
    "UNKNOWN_TRACKER",
    "UNKNOWN_PARTNER",
    "UNKNOWN_CLICK",
    "UNKNOWN_ACTION",
    "DUPLICATE_ORDER",
    "DUPLICATE_CLICK",
    "DUPLICATE_ID",
    "ITEMS_NOT_CONSECUTIVE",
    "AMBIGUOUS_AMOUNT",
    "INVALID_REASON",
    "NOT_ALLOWED_ON_REVERSAL",
    "CURRENCY_MISMATCH",
    "ACTION_LOCKED",
    "TOO_MANY_MODIFICATIONS",
]

_T = TypeVar("_T")


class BadValue(ValueError):
    """A field's value breaks a rule. `reason` reads after `Column 'value'`; a row rule
    (which spans columns) gives a whole message instead and may name its `column`."""

    def __init__(self, code: RowCode, reason: str, *, column: str | None = None) -> None:
        super().__init__(reason)
        self.code: RowCode = code
        self.reason = reason
        self.column = column


@dataclass(frozen=True)
class ParseContext:
    """What parsing depends on besides the text: the account's time zone (for dates sent
    without an offset), the moment of processing, and the account's date window."""

    tz: tzinfo
    now: datetime
    max_age_days: int | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("ParseContext.now must be timezone-aware")


@dataclass(frozen=True)
class Price:
    """A shopping-feed price: `12.99 USD`."""

    amount: Decimal
    currency: str


Parser: TypeAlias = Callable[[str, ParseContext], _T]
Rule: TypeAlias = Callable[[object, ParseContext], None]


def spelling_key(name: str) -> str:
    """Equal for spellings that mean the same: case, surrounding spaces and `_`/` `
    differences are ignored (`event_date` = `EventDate` = `Event Date`)."""
    return name.strip().replace("_", "").replace(" ", "").casefold()


# -- text and numbers ---------------------------------------------------------------------


def text(max_length: int | None = None) -> Parser[str]:
    """Any text, at most `max_length` characters."""

    def parse(value: str, ctx: ParseContext) -> str:
        if max_length is not None and len(value) > max_length:
            raise BadValue("VALUE_TOO_LONG", f"is longer than {max_length} characters")
        return value

    return parse


_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1


def integer(*, min_value: int | None = None, max_value: int = _INT64_MAX) -> Parser[int]:
    """Whole numbers in plain digits, within 64 bits; `1,000`, `1.0` and `1e3` are
    refused."""

    def parse(value: str, ctx: ParseContext) -> int:
        if not _INTEGER.fullmatch(value):
            raise BadValue("INVALID_NUMBER", "is not a whole number")
        if len(value.lstrip("+-").lstrip("0")) > 19:
            raise BadValue("INVALID_NUMBER", "is out of range")
        number = int(value)
        if min_value is not None and number < min_value:
            raise BadValue("INVALID_NUMBER", f"is less than {min_value}")
        if number > max_value:
            raise BadValue("INVALID_NUMBER", f"is more than {max_value}")
        if number < -_INT64_MAX - 1:
            raise BadValue("INVALID_NUMBER", "is out of range")
        return number

    return parse


_DECIMAL = re.compile(r"[+-]?(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))")
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]+,[0-9]{1,2}")
_EXPONENT = re.compile(r"[+-]?[0-9]*\.?[0-9]+[eE][+-]?[0-9]+")


def _decimal_value(
    value: str, max_digits: int, places: int, min_value: Decimal | int | None
) -> Decimal:
    match = _DECIMAL.fullmatch(value)
    if match is None:
        if _EXPONENT.fullmatch(value):
            raise BadValue("INVALID_NUMBER", "is not a plain number (no exponent)")
        if _DECIMAL_COMMA.fullmatch(value):
            raise BadValue("INVALID_NUMBER", "is not a number (use a point for decimals)")
        raise BadValue("INVALID_NUMBER", "is not a number")
    whole = (match.group(1) or "").lstrip("0")
    fraction = (match.group(2) or match.group(3) or "").rstrip("0")
    if len(fraction) > places:
        raise BadValue("INVALID_NUMBER", f"has more than {places} decimals")
    if len(whole) > max_digits - places:
        raise BadValue(
            "INVALID_NUMBER",
            f"is too large (at most {max_digits - places} digits before the decimal point)",
        )
    try:
        number = Decimal(value).quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:
        raise BadValue("INVALID_NUMBER", "is not a number") from None
    if min_value is not None and number < min_value:
        raise BadValue("INVALID_NUMBER", f"is less than {min_value}")
    return number


def decimal(
    max_digits: int, places: int, *, min_value: Decimal | int | None = None
) -> Parser[Decimal]:
    """A number like SQL `decimal(max_digits, places)`: `59.90`, `-3`, `.5`. Exponents,
    NaN, infinity and thousands separators are refused; trailing zeros beyond `places`
    are fine (`59.900`). The value comes back quantized to `places`."""

    def parse(value: str, ctx: ParseContext) -> Decimal:
        return _decimal_value(value, max_digits, places, min_value)

    return parse


# -- dates ----------------------------------------------------------------------------------

_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?"
    r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?"
)


def date_time() -> Parser[datetime]:
    """ISO 8601: `2026-11-20T10:15:00Z`, `…+01:00`, `2026-11-20 10:15`, `2026-11-20`.
    A value without an offset is read in the context's time zone. Returns an aware
    datetime in UTC."""

    def parse(value: str, ctx: ParseContext) -> datetime:
        if not _DATE_TIME.fullmatch(value):
            raise BadValue("INVALID_DATE", "is not a date")
        try:
            moment = datetime.fromisoformat(value[:-1] + "Z" if value[-1] == "z" else value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=ctx.tz)
            return moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise BadValue("INVALID_DATE", "is not a date") from None

    return parse


def date_window(
    *, max_future: timedelta = timedelta(minutes=5), max_age_days: int | None = None
) -> Rule:
    """A parsed date-time may be at most `max_future` ahead of the context's `now`
    (`FUTURE_DATE`) and at most N days old (`DATE_TOO_OLD`): N is the context's
    `max_age_days` (the account's window) when set, else `max_age_days` here."""

    def check(value: object, ctx: ParseContext) -> None:
        if not isinstance(value, datetime):
            return
        if value > ctx.now + max_future:
            minutes = int(max_future.total_seconds() // 60)
            raise BadValue("FUTURE_DATE", f"is more than {minutes} minutes in the future")
        days = ctx.max_age_days if ctx.max_age_days is not None else max_age_days
        if days is not None and value < ctx.now - timedelta(days=days):
            raise BadValue("DATE_TOO_OLD", f"is older than {days} days")

    return check


# -- codes and choices ----------------------------------------------------------------------


def currency() -> Parser[str]:
    """An ISO 4217 code, any case; returned in upper case."""

    def parse(value: str, ctx: ParseContext) -> str:
        code = value.upper()
        if code not in ISO_4217:
            raise BadValue("INVALID_CURRENCY", "is not an ISO 4217 currency code")
        return code

    return parse


def country() -> Parser[str]:
    """An ISO 3166-1 alpha-2 code, any case; returned in upper case."""

    def parse(value: str, ctx: ParseContext) -> str:
        code = value.upper()
        if code not in ISO_3166_ALPHA2:
            raise BadValue("INVALID_ENUM", "is not an ISO 3166-1 alpha-2 country code")
        return code

    return parse


def enum(
    values: Iterable[str], *, code: Literal["INVALID_ENUM", "INVALID_REASON"] = "INVALID_ENUM"
) -> Parser[str]:
    """One of `values`, matched like header names (`in stock` = `IN_STOCK` = `in_stock`)
    and returned in the canonical spelling. `code` is `INVALID_REASON` for a Reason."""
    canonical = list(values)
    by_key = {spelling_key(v): v for v in canonical}
    if len(by_key) != len(canonical):
        raise ValueError(f"enum values collide once normalised: {canonical}")
    listed = ", ".join(canonical)

    def parse(value: str, ctx: ParseContext) -> str:
        found = by_key.get(spelling_key(value))
        if found is None:
            raise BadValue(code, f"is not one of {listed}")
        return found

    return parse


def url(max_length: int = 2048) -> Parser[str]:
    """An absolute http(s) URL without spaces, at most `max_length` characters."""

    def parse(value: str, ctx: ParseContext) -> str:
        if len(value) > max_length:
            raise BadValue("INVALID_URL", f"is longer than {max_length} characters")
        if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
            raise BadValue("INVALID_URL", "is not a URL (it contains spaces)")
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            raise BadValue("INVALID_URL", "is not a URL") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise BadValue("INVALID_URL", "is not an absolute http(s) URL")
        return value

    return parse


def gtin() -> Parser[str]:
    """GTIN-8, -12 (UPC), -13 (EAN) or -14, with a valid GS1 check digit."""

    def parse(value: str, ctx: ParseContext) -> str:
        if not (value.isascii() and value.isdigit()) or len(value) not in (8, 12, 13, 14):
            raise BadValue("INVALID_GTIN", "is not a GTIN (8, 12, 13 or 14 digits)")
        body = value[:-1]
        total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
        expected = (10 - total % 10) % 10
        if int(value[-1]) != expected:
            raise BadValue("INVALID_GTIN", f"has a wrong check digit (expected {expected})")
        return value

    return parse


_PRICE = re.compile(r"(\S+)\s+(\S+)")


def price(max_digits: int = 14, places: int = 2) -> Parser[Price]:
    """`12.99 USD`: a non-negative number, a space, an ISO 4217 code."""

    def parse(value: str, ctx: ParseContext) -> Price:
        match = _PRICE.fullmatch(value)
        if match is None:
            raise BadValue("INVALID_NUMBER", "is not a price like '12.99 USD'")
        amount = _decimal_value(match.group(1), max_digits, places, 0)
        code = match.group(2).upper()
        if code not in ISO_4217:
            raise BadValue("INVALID_CURRENCY", f"has '{code[:10]}', not an ISO 4217 currency")
        return Price(amount, code)

    return parse
