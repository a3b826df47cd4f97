"""Every row-level error code of formats/results.md, each from a small file through the
real pipeline: the bad row is in the error file with its line, code and a message naming
the column and value; the good rows around it are imported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from dropyard.app import Dropyard
from dropyard.ledger.models import Action
from tests.datatypes.test_import_world import (
    CAMPAIGN,
    PARTNER_C,
    TRACKER_B,
    World,
    conversion,
    conversions_file,
    csv_bytes,
    days_ago,
    iso,
    make_world,
)

CLICK_HEADER = (
    "ClickId",
    "CampaignId",
    "MediaPartnerId",
    "EventDate",
    "LandingPageUrl",
    "DeviceType",
)
CATALOG_HEADER = ("id", "title", "link", "image_link", "price", "availability", "gtin")
MODIFICATION_HEADER = ("ActionId", "Amount", "Reason", "CustomerStatus", "CurrencyCode")


def click_row(click_id: str, **given: object) -> list[object]:
    row: dict[str, object] = {
        "ClickId": click_id,
        "CampaignId": CAMPAIGN,
        "MediaPartnerId": 7001,
        "EventDate": iso(days_ago(1)),
        "LandingPageUrl": "https://shop.example/p/1",
        "DeviceType": "MOBILE",
    }
    row.update(given)
    return [row[c] for c in CLICK_HEADER]


def catalog_row(item_id: str, **given: object) -> list[object]:
    row: dict[str, object] = {
        "id": item_id,
        "title": f"Shoe {item_id}",
        "link": f"https://shop.example/p/{item_id}",
        "image_link": f"https://shop.example/i/{item_id}.jpg",
        "price": "59.90 USD",
        "availability": "in_stock",
        "gtin": "4006381333931",
    }
    row.update(given)
    return [row[c] for c in CATALOG_HEADER]


def orders(*bad: dict[str, object]) -> Callable[[World], bytes]:
    """A conversions file: a good order on line 2, then the given rows."""
    return lambda world: conversions_file([conversion("GOOD-1"), *bad])


def clicks(*bad: list[object]) -> Callable[[World], bytes]:
    return lambda world: csv_bytes(CLICK_HEADER, [click_row("clk-good"), *bad])


def catalog(*bad: list[object]) -> Callable[[World], bytes]:
    return lambda world: csv_bytes(
        CATALOG_HEADER, [catalog_row("SKU-1"), *bad, catalog_row("SKU-2"), catalog_row("SKU-3")]
    )


def modifications(
    bad: dict[str, object], prepare: Callable[[World, int], None] | None = None
) -> Callable[[World], bytes]:
    """Two imported actions; line 2 changes the first, line 3 is the bad row for the
    second (`ActionId` is filled in)."""

    def build(world: World) -> bytes:
        world.run("conversions", conversions_file([conversion("ORD-1"), conversion("ORD-2")]))
        first, second = (a.id for a in world.actions())
        if prepare is not None:
            prepare(world, second)
        good = {"ActionId": first, "Amount": "90.00", "Reason": "ORDER_UPDATE"}
        row = {"ActionId": second, "Amount": "50.00", "Reason": "ITEM_RETURNED", **bad}
        return csv_bytes(
            MODIFICATION_HEADER,
            [[good.get(c) for c in MODIFICATION_HEADER], [row.get(c) for c in MODIFICATION_HEADER]],
        )

    return build


def _set(**values: object) -> Callable[[World, int], None]:
    def prepare(world: World, action_id: int) -> None:
        world.change(lambda s: update(Action).where(Action.id == action_id).values(**values))

    return prepare


@dataclass(frozen=True)
class Case:
    data_type: str
    code: str
    build: Callable[[World], bytes]
    needle: str  # the message names the column and the value
    line: int = 3


def _bad_bytes(world: World) -> bytes:
    good = conversions_file([conversion("GOOD-1"), conversion("ORD-\x01")])
    return good.replace(b"ORD-\x01", b"ORD-\xff\xfe")


def _short_row(world: World) -> bytes:
    return conversions_file([conversion("GOOD-1")]) + b"1001,5001,2026-11-20\n"


CASES = [
    Case("conversions", "MISSING_REQUIRED", orders(conversion("")), "OrderId is missing"),
    Case("conversions", "MALFORMED_ROW", _short_row, "has 3 fields, the header has 12"),
    Case("conversions", "BAD_ENCODING", _bad_bytes, "is not valid UTF-8"),
    Case("conversions", "VALUE_TOO_LONG", orders(conversion("X" * 65)), "OrderId 'XXXX"),
    Case(
        "conversions", "INVALID_NUMBER", orders(conversion("O", Amount="12,50")), "Amount '12,50'"
    ),
    Case(
        "conversions",
        "INVALID_DATE",
        orders(conversion("O", EventDate="2026-13-01")),
        "EventDate '2026-13-01' is not a date",
    ),
    Case(
        "conversions",
        "FUTURE_DATE",
        orders(conversion("O", EventDate=iso(days_ago(-1)))),
        "minutes in the future",
    ),
    Case(
        "conversions",
        "DATE_TOO_OLD",
        orders(conversion("O", EventDate=iso(days_ago(100)))),
        "is older than 88 days",
    ),
    Case(
        "conversions",
        "INVALID_CURRENCY",
        orders(conversion("O", CurrencyCode="XYZ")),
        "CurrencyCode 'XYZ'",
    ),
    Case(
        "clicks",
        "INVALID_URL",
        clicks(click_row("clk-2", LandingPageUrl="ftp://shop.example/x")),
        "LandingPageUrl 'ftp://shop.example/x'",
    ),
    Case(
        "clicks",
        "INVALID_ENUM",
        clicks(click_row("clk-2", DeviceType="PHONE")),
        "DeviceType 'PHONE'",
    ),
    Case(
        "product_catalogs",
        "INVALID_GTIN",
        catalog(catalog_row("SKU-X", gtin="4006381333932")),
        "gtin '4006381333932' has a wrong check digit",
    ),
    Case(
        "conversions",
        "UNKNOWN_CAMPAIGN",
        orders(conversion("O", CampaignId=2001, ActionTrackerId=6001)),
        "CampaignId '2001' is not a campaign of this account",
    ),
    Case(
        "conversions",
        "UNKNOWN_TRACKER",
        orders(conversion("O", ActionTrackerId=TRACKER_B)),
        f"ActionTrackerId '{TRACKER_B}' is not an action tracker of campaign {CAMPAIGN}",
    ),
    Case(
        "conversions",
        "UNKNOWN_PARTNER",
        orders(conversion("O", MediaPartnerId=PARTNER_C)),
        f"MediaPartnerId '{PARTNER_C}' is not a partner in campaign {CAMPAIGN}",
    ),
    Case(
        "conversions",
        "UNKNOWN_CLICK",
        orders(conversion("O", ClickId="clk-nobody", MediaPartnerId=None)),
        "ClickId 'clk-nobody' is not a click of this account",
    ),
    Case(
        "action_modifications",
        "UNKNOWN_ACTION",
        modifications({"ActionId": 999999}),
        "ActionId '999999' is not an action of this account",
    ),
    Case(
        "conversions",
        "DUPLICATE_ORDER",
        orders(conversion("GOOD-1", Amount="5.00")),
        "OrderId 'GOOD-1' of campaign 1001 and tracker 5001 is already on line 2",
    ),
    Case(
        "clicks",
        "DUPLICATE_CLICK",
        clicks(click_row("clk-good")),
        "ClickId 'clk-good' is already on line 2",
    ),
    Case(
        "product_catalogs",
        "DUPLICATE_ID",
        catalog(catalog_row("SKU-1")),
        "id 'SKU-1' is already on line 2",
    ),
    Case(
        "conversions",
        "ITEMS_NOT_CONSECUTIVE",
        orders(
            conversion("ORD-9", Sku="A", Amount=None, ItemPrice="1.00"),
            conversion("ORD-8", Sku="B", Amount="2.00"),
            conversion("ORD-9", Sku="C", Amount=None, ItemPrice="3.00"),
        ),
        "OrderId 'ORD-9' of campaign 1001 and tracker 5001 has item rows on line 3",
        line=5,
    ),
    Case(
        "conversions",
        "AMBIGUOUS_AMOUNT",
        orders(conversion("O", Amount="5.00", ItemPrice="5.00")),
        "Amount '5.00' and ItemPrice '5.00' are given",
    ),
    Case(
        "action_modifications",
        "INVALID_REASON",
        modifications({"Reason": "BECAUSE"}),
        "Reason 'BECAUSE' is not one of",
    ),
    Case(
        "action_modifications",
        "NOT_ALLOWED_ON_REVERSAL",
        modifications({"Amount": "0", "CustomerStatus": "NEW"}),
        "CustomerStatus 'NEW' cannot be set on a reversal",
    ),
    Case(
        "action_modifications",
        "CURRENCY_MISMATCH",
        modifications({"CurrencyCode": "EUR"}),
        "CurrencyCode 'EUR' is not the currency of action",
    ),
    Case(
        "action_modifications",
        "ACTION_LOCKED",
        modifications({}, _set(status="LOCKED")),
        "locked actions cannot be modified",
    ),
    Case(
        "action_modifications",
        "TOO_MANY_MODIFICATIONS",
        modifications({}, _set(modification_count=1000)),
        "already has 1000 modifications",
    ),
]


def test_every_row_level_code_has_a_case() -> None:
    row_codes = {
        "MISSING_REQUIRED", "MALFORMED_ROW", "BAD_ENCODING", "VALUE_TOO_LONG", "INVALID_NUMBER",
        "INVALID_DATE", "FUTURE_DATE", "DATE_TOO_OLD", "INVALID_CURRENCY", "INVALID_URL",
        "INVALID_ENUM", "INVALID_GTIN", "UNKNOWN_CAMPAIGN", "UNKNOWN_TRACKER", "UNKNOWN_PARTNER",
        "UNKNOWN_CLICK", "UNKNOWN_ACTION", "DUPLICATE_ORDER", "DUPLICATE_CLICK", "DUPLICATE_ID",
        "ITEMS_NOT_CONSECUTIVE", "AMBIGUOUS_AMOUNT", "INVALID_REASON", "NOT_ALLOWED_ON_REVERSAL",
        "CURRENCY_MISMATCH", "ACTION_LOCKED", "TOO_MANY_MODIFICATIONS",
    }  # fmt: skip
    assert {c.code for c in CASES} == row_codes


@pytest.mark.parametrize("case", CASES, ids=[c.code for c in CASES])
def test_a_bad_row_is_reported_with_its_code_and_line(app: Dropyard, case: Case) -> None:
    world = make_world(app)
    outcome = world.run(case.data_type, case.build(world))

    assert outcome.state == "partial", outcome.summary
    assert outcome.codes() == [(case.line, case.code)]
    assert case.needle in outcome.message(case.line)
    assert outcome.summary["errorRowCount"] == 1
    assert outcome.summary["successfulRowCount"] == outcome.summary["totalRowCount"] - 1
    bad = outcome.errors[0]
    assert bad["LineNumber"] == str(case.line)


def test_an_unlocked_action_past_its_lock_date_is_locked_and_marked_so(app: Dropyard) -> None:
    world = make_world(app)
    build = modifications({}, _set(locks_at=days_ago(1) - timedelta(hours=1)))
    outcome = world.run("action_modifications", build(world))

    assert outcome.codes() == [(3, "ACTION_LOCKED")]
    first, second = world.actions()
    assert (first.status, first.amount) == ("PENDING", Decimal("90.00"))
    assert (second.status, second.amount, second.modification_count) == (
        "LOCKED",
        Decimal("100.00"),
        0,
    )
    assert second.modified_at > second.created_at
