"""What reports and exports contain: numbers, columns, visibility, delta feeds."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select, update

from dropyard.files.models import File
from dropyard.ledger.models import Action
from tests.outbound.conftest import (
    CAMPAIGN,
    OTHER_CAMPAIGN,
    PARTNER_A,
    PARTNER_B,
    TRACKER,
    World,
    utc,
)

PERFORMANCE_HEADER = [
    "Date",
    "CampaignId",
    "MediaPartnerId",
    "Clicks",
    "Actions",
    "ReversedActions",
    "SaleAmount",
    "Payout",
    "CurrencyCode",
]
ACTION_HEADER = [
    "ActionId",
    "CampaignId",
    "ActionTrackerId",
    "MediaPartnerId",
    "EventDate",
    "OrderId",
    "ClickId",
    "Status",
    "Amount",
    "Payout",
    "CurrencyCode",
    "ModifiedDate",
]
PARIS_REPORT = {"report": "performance_by_day", "range": "yesterday", "timezone": "Europe/Paris"}


def _two_days(world: World) -> None:
    """28 and 29 March 2026 in Paris (the 29th is 23 hours long), two partners."""
    # 28 March (CET, UTC+1): from 27 March 23:00 UTC.
    world.click(utc(2026, 3, 27, 23, 10))
    world.click(utc(2026, 3, 28, 8))
    world.click(utc(2026, 3, 28, 12), partner=PARTNER_B)
    world.action(utc(2026, 3, 28, 10), "100.00")
    world.action(utc(2026, 3, 28, 22, 50), "50.00", status="REVERSED")
    world.action(utc(2026, 3, 28, 9), "40.00", campaign=OTHER_CAMPAIGN)
    world.action(utc(2026, 3, 28, 9), "60.00", campaign=OTHER_CAMPAIGN, partner=PARTNER_B)
    # 29 March: CET until 01:00 UTC, then CEST (UTC+2) until 22:00 UTC.
    world.click(utc(2026, 3, 28, 23, 30))
    world.action(utc(2026, 3, 29, 21, 30), "20.00", status="LOCKED")
    world.action(utc(2026, 3, 29, 0, 30), "30.00", partner=PARTNER_B)
    # Outside: the 27th and the 30th in Paris.
    world.click(utc(2026, 3, 27, 22, 59))
    world.action(utc(2026, 3, 29, 22, 30), "999.00")


def test_performance_by_day_counts_local_days_across_a_dst_change(world: World) -> None:
    _two_days(world)
    connection = world.connection(PARIS_REPORT)
    result = world.service().run(
        connection, range_from=date(2026, 3, 28), range_to=date(2026, 3, 29)
    )
    assert result.file is not None
    assert result.rows == 4
    assert (result.range_start, result.range_end) == (utc(2026, 3, 27, 23), utc(2026, 3, 29, 22))
    assert world.table(connection, result.file.name) == [
        PERFORMANCE_HEADER,
        ["2026-03-28", "1001", "7001", "2", "2", "1", "100.00", "10.00", "USD"],
        ["2026-03-28", "1001", "7002", "1", "0", "0", "0.00", "0.00", "USD"],
        ["2026-03-29", "1001", "7001", "1", "1", "0", "20.00", "2.00", "USD"],
        ["2026-03-29", "1001", "7002", "0", "1", "0", "30.00", "3.00", "USD"],
    ]


def test_yesterday_on_the_dst_day(world: World) -> None:
    _two_days(world)
    connection = world.connection(PARIS_REPORT)
    result = world.service().run(connection, at=utc(2026, 3, 30, 4))
    assert result.file is not None
    assert [r[0] for r in world.table(connection, result.file.name)[1:]] == [
        "2026-03-29",
        "2026-03-29",
    ]


def test_a_partner_account_sees_only_its_partners_rows(world: World) -> None:
    _two_days(world)
    connection = world.connection(PARIS_REPORT, account=world.partner_account_id)
    result = world.service().run(
        connection, range_from=date(2026, 3, 28), range_to=date(2026, 3, 29)
    )
    assert result.file is not None
    assert world.table(connection, result.file.name)[1:] == [
        ["2026-03-28", "1001", "7001", "2", "2", "1", "100.00", "10.00", "USD"],
        ["2026-03-28", "1002", "7001", "0", "1", "0", "40.00", "4.00", "USD"],
        ["2026-03-29", "1001", "7001", "1", "1", "0", "20.00", "2.00", "USD"],
    ]
    listing = world.connection(
        {"report": "action_listing", "range": "previous_month"}, account=world.partner_account_id
    )
    listed = world.service().run(listing, at=utc(2026, 4, 2)).file
    assert listed is not None
    rows = world.table(listing, listed.name)
    assert {(r[1], r[3]) for r in rows[1:]} == {("1001", "7001"), ("1002", "7001")}
    assert len(rows) == 1 + 5


def test_a_brand_sees_only_its_campaigns(world: World) -> None:
    _two_days(world)
    connection = world.connection({"range": "previous_month"}, data_type="conversions")
    result = world.service().run(connection, at=utc(2026, 4, 2))
    assert result.file is not None
    rows = world.table(connection, result.file.name)
    assert {r[1] for r in rows[1:]} == {str(CAMPAIGN)}
    assert {r[3] for r in rows[1:]} == {str(PARTNER_A), str(PARTNER_B)}


def test_action_listing_and_conversions_export_columns(world: World) -> None:
    action_id = world.action(
        utc(2026, 3, 9, 10, 15),
        "59.90",
        order="=HYPERLINK(1)",
        click_id="clk-9f2a",
        status="LOCKED",
        modified=utc(2026, 3, 9, 12),
    )
    for data_type, details in (
        ("conversions", {"range": "yesterday", "timezone": "Europe/Paris"}),
        ("reports", {"report": "action_listing", "range": "yesterday", "timezone": "Europe/Paris"}),
    ):
        connection = world.connection(details, data_type=data_type)
        result = world.service().run(connection, at=utc(2026, 3, 10, 2))
        assert result.file is not None
        assert world.table(connection, result.file.name) == [
            ACTION_HEADER,
            [
                str(action_id),
                str(CAMPAIGN),
                str(TRACKER),
                str(PARTNER_A),
                "2026-03-09T11:15:00+01:00",
                "'=HYPERLINK(1)",
                "clk-9f2a",
                "LOCKED",
                "59.90",
                "5.99",
                "USD",
                "2026-03-09T13:00:00+01:00",
            ],
        ]


def test_since_last_run_delivers_only_what_changed(world: World) -> None:
    first_id = world.action(utc(2026, 2, 1), "10.00", modified=utc(2026, 3, 2))
    second_id = world.action(utc(2026, 3, 5), "20.00", modified=utc(2026, 3, 5))
    world.action(utc(2025, 12, 1), "5.00", modified=utc(2025, 12, 1))  # before the connection
    connection = world.connection(
        {"range": "since_last_run"}, data_type="conversions", created_at=utc(2026, 3, 1)
    )
    service = world.service()
    t1 = utc(2026, 3, 10)
    first = service.run(connection, at=t1)
    assert first.file is not None
    assert (first.range_start, first.range_end) == (utc(2026, 3, 1), t1)
    assert [int(r[0]) for r in world.table(connection, first.file.name)[1:]] == [
        first_id,
        second_id,
    ]
    # After the first file: one action changes (reversed), one is new.
    with world.app.sessions() as s, s.begin():
        s.execute(
            update(Action)
            .where(Action.id == second_id)
            .values(status="REVERSED", amount=0, payout=0, modified_at=t1 + timedelta(hours=1))
        )
    third_id = world.action(utc(2026, 3, 10, 1), "30.00", modified=t1 + timedelta(hours=2))
    world.action(utc(2026, 3, 11, 1), "40.00", modified=utc(2026, 3, 11, 1))  # after the run
    second = service.run(connection, at=t1 + timedelta(days=1))
    assert second.file is not None
    assert (second.range_start, second.range_end) == (t1, t1 + timedelta(days=1))
    rows = world.table(connection, second.file.name)[1:]
    assert [(int(r[0]), r[7], r[8]) for r in rows] == [
        (second_id, "REVERSED", "0.00"),
        (third_id, "PENDING", "30.00"),
    ]
    # A backfill in between does not move where the delta feed continues.
    service.run(connection, range_from=utc(2026, 3, 11), range_to=utc(2026, 3, 20))
    third = service.run(connection, at=t1 + timedelta(days=2))
    assert third.range_start == t1 + timedelta(days=1)
    with world.app.sessions() as s:
        ranges = s.execute(
            select(File.range_start, File.range_end)
            .where(File.connection_id == connection)
            .order_by(File.id)
        ).all()
    assert ranges[0] == (utc(2026, 3, 1), t1)


def test_since_last_run_performance_uses_event_dates(world: World) -> None:
    world.click(utc(2026, 3, 9, 12))
    world.action(utc(2026, 3, 9, 13), "10.00", modified=utc(2026, 3, 20))
    connection = world.connection(
        {"report": "performance_by_day", "range": "since_last_run"}, created_at=utc(2026, 3, 9)
    )
    result = world.service().run(connection, at=utc(2026, 3, 10))
    assert result.file is not None
    assert world.table(connection, result.file.name)[1:] == [
        ["2026-03-09", "1001", "7001", "1", "1", "0", "10.00", "1.00", "USD"]
    ]
