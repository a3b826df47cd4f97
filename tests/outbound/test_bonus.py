"""Performance bonus detail: tiers per calendar month, ESTIMATED until FINAL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, update

from dropyard.ledger.models import Action, BonusResult
from dropyard.outbound.bonus import Tier, reached
from tests.outbound.conftest import PARTNER_A, PARTNER_B, World, utc

HEADER = [
    "Period",
    "CampaignId",
    "MediaPartnerId",
    "QualifyingActions",
    "QualifyingSaleAmount",
    "TierReached",
    "BonusAmount",
    "CurrencyCode",
    "Status",
]
AT = datetime(2026, 3, 10, 3, tzinfo=UTC)


def _february(world: World) -> int:
    """Campaign 1001 (tiers 100 → 10, 500 → 75; months of its brand's zone, Paris)."""
    # 00:30 on 1 February in Paris: February's, though still January in UTC.
    world.action(utc(2026, 1, 31, 23, 30), "10.00", status="LOCKED")
    world.action(utc(2026, 2, 3), "300.00", status="LOCKED")
    world.action(utc(2026, 2, 20), "250.00", status="LOCKED")
    world.action(utc(2026, 2, 21), "80.00", status="REVERSED")
    world.action(utc(2026, 2, 28, 23, 30), "1000.00", status="LOCKED")  # 1 March in Paris
    world.action(utc(2026, 2, 5), "120.00", partner=PARTNER_B, status="LOCKED")
    pending = world.action(utc(2026, 2, 6), "500.00", partner=PARTNER_B)
    world.action(utc(2026, 3, 2), "50.00", status="LOCKED")
    return pending


def _results(world: World) -> list[tuple[object, ...]]:
    with world.app.sessions() as s:
        return [
            tuple(r)
            for r in s.execute(
                select(
                    BonusResult.period,
                    BonusResult.partner_id,
                    BonusResult.qualifying_actions,
                    BonusResult.qualifying_amount,
                    BonusResult.tier_reached,
                    BonusResult.bonus_amount,
                    BonusResult.status,
                ).order_by(BonusResult.period, BonusResult.partner_id)
            )
        ]


def test_tiers() -> None:
    tiers = [Tier(Decimal(100), Decimal(10)), Tier(Decimal(500), Decimal(75))]
    assert reached(tiers, Decimal("99.99")) == (0, Decimal("0.00"))
    assert reached(tiers, Decimal(100)) == (1, Decimal(10))
    assert reached(tiers, Decimal("50000")) == (2, Decimal(75))
    assert reached([], Decimal(1)) == (0, Decimal("0.00"))


def test_previous_month_is_final_unless_actions_are_still_pending(world: World) -> None:
    pending = _february(world)
    connection = world.connection({"range": "previous_month"}, data_type="performance_bonus_detail")
    service = world.service()
    result = service.run(connection, at=AT)
    assert result.file is not None
    assert world.table(connection, result.file.name) == [
        HEADER,
        ["2026-02", "1001", "7001", "3", "560.00", "2", "75.00", "USD", "FINAL"],
        ["2026-02", "1001", "7002", "1", "120.00", "1", "10.00", "USD", "ESTIMATED"],
    ]
    assert _results(world) == [
        ("2026-02", PARTNER_A, 3, Decimal("560.00"), 2, Decimal("75.00"), "FINAL"),
        ("2026-02", PARTNER_B, 1, Decimal("120.00"), 1, Decimal("10.00"), "ESTIMATED"),
    ]
    # Once the last action locks, the month is final and the saved result follows.
    with world.app.sessions() as s, s.begin():
        s.execute(update(Action).where(Action.id == pending).values(status="LOCKED"))
    again = service.run(connection, at=AT)
    assert again.file is not None
    assert world.table(connection, again.file.name)[2] == [
        "2026-02",
        "1001",
        "7002",
        "2",
        "620.00",
        "2",
        "75.00",
        "USD",
        "FINAL",
    ]
    assert _results(world)[1] == (
        "2026-02",
        PARTNER_B,
        2,
        Decimal("620.00"),
        2,
        Decimal("75.00"),
        "FINAL",
    )


def test_the_running_month_is_an_estimate(world: World) -> None:
    _february(world)
    connection = world.connection({"range": "month_to_date"}, data_type="performance_bonus_detail")
    result = world.service().run(connection, at=AT)
    assert result.file is not None
    assert world.table(connection, result.file.name)[1:] == [
        ["2026-03", "1001", "7001", "2", "1050.00", "2", "75.00", "USD", "ESTIMATED"],
    ]


def test_a_partner_sees_only_its_bonus(world: World) -> None:
    _february(world)
    connection = world.connection(
        {"range": "previous_month"},
        data_type="performance_bonus_detail",
        account=world.partner_account_id,
    )
    result = world.service().run(connection, at=AT)
    assert result.file is not None
    assert [r[2] for r in world.table(connection, result.file.name)[1:]] == ["7001"]


def test_a_delta_feed_recomputes_the_months_that_changed(world: World) -> None:
    pending = _february(world)
    connection = world.connection(
        {"range": "since_last_run"},
        data_type="performance_bonus_detail",
        created_at=utc(2026, 3, 9),
    )
    service = world.service()
    assert service.run(connection, at=AT).rows == 0  # nothing changed since 9 March
    with world.app.sessions() as s, s.begin():
        s.execute(
            update(Action)
            .where(Action.id == pending)
            .values(status="LOCKED", modified_at=utc(2026, 3, 10, 12))
        )
    result = service.run(connection, at=utc(2026, 3, 11))
    assert result.file is not None
    assert [(r[0], r[2], r[8]) for r in world.table(connection, result.file.name)[1:]] == [
        ("2026-02", "7001", "FINAL"),
        ("2026-02", "7002", "FINAL"),
    ]
