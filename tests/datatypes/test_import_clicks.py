"""Clicks through the real pipeline, and the conversions they attribute afterwards."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from dropyard.app import Dropyard
from dropyard.ledger.models import Click
from tests.datatypes.test_import_world import (
    CAMPAIGN,
    CAMPAIGN_B,
    PARTNER_A,
    PARTNER_B,
    PARTNER_C,
    TRACKER,
    conversion,
    conversions_file,
    csv_bytes,
    days_ago,
    iso,
    make_world,
)

HEADER = (
    "ClickId",
    "CampaignId",
    "MediaPartnerId",
    "EventDate",
    "LandingPageUrl",
    "ReferringUrl",
    "SubId1",
    "DeviceType",
    "CountryCode",
)


def click(click_id: str, campaign: int = CAMPAIGN, partner: int = PARTNER_A) -> list[object]:
    when = iso(days_ago(2))
    return [click_id, campaign, partner, when, "https://shop.example/p?x=1", "", "", "mobile", "de"]


def _click(c: Click) -> tuple[object, ...]:
    return (c.click_id, c.campaign_id, c.partner_id, c.device_type, c.country_code)


def test_clicks_are_kept_and_attribute_later_conversions(app: Dropyard) -> None:
    world = make_world(app)
    outcome = world.run(
        "clicks",
        csv_bytes(
            HEADER,
            [click("clk-1", partner=PARTNER_B), click("clk-2", CAMPAIGN_B, PARTNER_C)],
            delimiter="\t",
        ),
        name="clicks.tsv",
    )
    assert outcome.state == "processed", outcome.errors
    with app.sessions() as session:
        kept = session.scalars(select(Click).order_by(Click.click_id)).all()
    assert [_click(c) for c in kept] == [
        ("clk-1", CAMPAIGN, PARTNER_B, "MOBILE", "DE"),
        ("clk-2", CAMPAIGN_B, PARTNER_C, "MOBILE", "DE"),
    ]  # fmt: skip
    assert all(c.file_id == outcome.file_id for c in kept)

    orders = world.run(
        "conversions",
        conversions_file(
            [
                conversion("ORD-1", ClickId="clk-1", MediaPartnerId=None),
                # A click of another campaign does not attribute this one's orders.
                conversion("ORD-2", ClickId="clk-2", MediaPartnerId=None),
                # Naming a partner other than the click's is a contradiction.
                conversion("ORD-3", ClickId="clk-1", MediaPartnerId=PARTNER_A),
            ]
        ),
    )
    assert orders.codes() == [(3, "UNKNOWN_CLICK"), (4, "UNKNOWN_PARTNER")]
    assert f"is a click of campaign {CAMPAIGN_B}, not of campaign {CAMPAIGN}" in orders.message(3)
    (action,) = world.actions()
    assert (action.partner_id, action.click_id, action.payout) == (
        PARTNER_B,
        "clk-1",
        Decimal("10.00"),
    )
    assert action.tracker_id == TRACKER


def test_a_click_id_is_taken_once_per_account(app: Dropyard) -> None:
    world = make_world(app)
    world.run("clicks", csv_bytes(HEADER, [click("clk-1")]))
    again = world.run("clicks", csv_bytes(HEADER, [click("clk-2"), click("clk-1"), click("clk-2")]))

    assert again.codes() == [(3, "DUPLICATE_CLICK"), (4, "DUPLICATE_CLICK")]
    assert "ClickId 'clk-1' was already received before" in again.message(3)
    assert "is already on line 2 of this file" in again.message(4)
    # Another account may use the same click id.
    world.click("clk-1", campaign=2001, partner=PARTNER_A, account=world.other_brand_id)
    assert world.count(Click) == 3


def test_clicks_from_the_future_or_outside_the_campaign_are_refused(app: Dropyard) -> None:
    world = make_world(app)
    future = click("clk-1")
    future[3] = iso(days_ago(-0.01))  # 14 minutes ahead
    old = click("clk-4")
    old[3] = iso(days_ago(200))  # no age limit for clicks
    outcome = world.run(
        "clicks",
        csv_bytes(HEADER, [future, click("clk-2", 2001), click("clk-3", CAMPAIGN, PARTNER_C), old]),
    )

    assert outcome.codes() == [(2, "FUTURE_DATE"), (3, "UNKNOWN_CAMPAIGN"), (4, "UNKNOWN_PARTNER")]
    assert world.count(Click) == 1
