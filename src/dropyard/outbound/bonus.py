"""Performance bonus detail: each campaign partner's bonus per calendar month.

Over the month's `LOCKED` actions (by event date), the partner reaches the highest of the
campaign's tiers whose threshold the qualifying sale amount meets, and earns that tier's
bonus. A row is `ESTIMATED` while the month is still running or any of its actions for
that partner is still unlocked (`PENDING`), `FINAL` after.

A month's actions are those of the campaign owner's time zone, whoever views them: a
bonus is one fact per campaign, partner and month, kept as `BonusResult` (upserted on
every run). Which months a file has: those the window touches in the connection's time
zone; for a delta window (since_last_run), the months whose actions changed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, case, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dropyard.accounts.models import Account
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.ledger.models import Action, BonusResult, Campaign
from dropyard.outbound.generators import Request, Row, visible, visible_campaigns
from dropyard.outbound.ranges import local_midnight, months_between, next_month

BONUS_COLUMNS = (
    "Period",
    "CampaignId",
    "MediaPartnerId",
    "QualifyingActions",
    "QualifyingSaleAmount",
    "TierReached",
    "BonusAmount",
    "CurrencyCode",
    "Status",
)
_ZERO = Decimal("0.00")
_UPDATED = (
    "qualifying_actions",
    "qualifying_amount",
    "tier_reached",
    "bonus_amount",
    "currency",
    "status",
    "computed_at",
)


@dataclass(frozen=True)
class Tier:
    threshold: Decimal
    bonus: Decimal


def tiers_of(raw: Sequence[Mapping[str, Any]]) -> list[Tier]:
    """A campaign's tiers (as the ledger stores them), ascending by threshold."""
    tiers = [Tier(Decimal(str(t["threshold"])), Decimal(str(t["bonus"]))) for t in raw]
    return sorted(tiers, key=lambda t: t.threshold)


def reached(tiers: Sequence[Tier], amount: Decimal) -> tuple[int, Decimal]:
    """The highest tier (1-based; 0 for none) that `amount` meets, and its bonus."""
    level, bonus = 0, _ZERO
    for index, tier in enumerate(tiers, start=1):
        if amount >= tier.threshold:
            level, bonus = index, tier.bonus
    return level, bonus


class BonusDetail:
    """The `performance_bonus_detail` generator; saves what it computes as BonusResult."""

    name = "performance_bonus_detail"
    columns: tuple[str, ...] = BONUS_COLUMNS

    def __init__(self, sessions: SessionFactory, *, batch: int = 500) -> None:
        self._sessions = sessions
        self._batch = batch

    def rows(self, session: Session, request: Request) -> Iterator[Row]:
        campaigns = session.execute(
            select(Campaign.id, Campaign.currency, Campaign.bonus_tiers, Account.timezone)
            .join(Account, Account.id == Campaign.account_id)
            .where(visible_campaigns(request.viewer))
            .order_by(Campaign.id)
        ).all()
        pending: list[dict[str, Any]] = []
        for campaign_id, currency, raw_tiers, zone in campaigns:
            tz = ZoneInfo(zone or "UTC")
            tiers = tiers_of(raw_tiers or [])
            for month in self._months(session, request, campaign_id, tz):
                for row, values in self._month(
                    session, request, campaign_id, currency, tiers, month, tz
                ):
                    yield row
                    pending.append(values)
                    if len(pending) >= self._batch:
                        self._save(pending)
                        pending = []
        self._save(pending)

    def _months(
        self, session: Session, request: Request, campaign_id: int, tz: ZoneInfo
    ) -> list[date]:
        window = request.window
        if window.empty:
            return []
        if not window.delta:  # the months the viewer asked for, on its own calendar
            return months_between(window.start, window.end, request.tz)
        first, last = session.execute(
            select(func.min(Action.event_date), func.max(Action.event_date)).where(
                Action.campaign_id == campaign_id,
                Action.modified_at >= window.start,
                Action.modified_at < window.end,
                visible(Action.campaign_id, Action.partner_id, request.viewer),
            )
        ).one()
        if first is None or last is None:
            return []
        return months_between(first, last + timedelta(microseconds=1), tz)

    def _month(
        self,
        session: Session,
        request: Request,
        campaign_id: int,
        currency: str,
        tiers: Sequence[Tier],
        month: date,
        tz: ZoneInfo,
    ) -> Iterator[tuple[Row, dict[str, Any]]]:
        start, end = local_midnight(month, tz), local_midnight(next_month(month), tz)
        locked = Action.status == "LOCKED"
        one, zero = literal_column("1", Integer), literal_column("0", Integer)
        query = (
            select(
                Action.partner_id,
                func.sum(case((locked, one), else_=zero)),
                func.sum(case((locked, Action.amount), else_=literal_column("0"))),
                func.sum(case((Action.status == "PENDING", one), else_=zero)),
            )
            .where(
                Action.campaign_id == campaign_id,
                Action.event_date >= start,
                Action.event_date < end,
                visible(Action.campaign_id, Action.partner_id, request.viewer),
            )
            .group_by(Action.partner_id)
            .order_by(Action.partner_id)
        )
        period = f"{month:%Y-%m}"
        for partner_id, count, raw_amount, unlocked in session.execute(query):
            amount = Decimal(str(raw_amount or 0)).quantize(Decimal("0.01"))
            level, bonus = reached(tiers, amount)
            status = "ESTIMATED" if unlocked or end > request.at else "FINAL"
            row: Row = (
                period,
                campaign_id,
                partner_id,
                int(count or 0),
                amount,
                level,
                bonus,
                currency,
                status,
            )
            values = {
                "campaign_id": campaign_id,
                "partner_id": partner_id,
                "period": period,
                "qualifying_actions": int(count or 0),
                "qualifying_amount": amount,
                "tier_reached": level,
                "bonus_amount": bonus,
                "currency": currency,
                "status": status,
                "computed_at": utcnow(),
            }
            yield row, values

    def _save(self, values: list[dict[str, Any]]) -> None:
        """Upsert in a short transaction of its own: the report's read stays open."""
        if not values:
            return
        with transaction(self._sessions) as session:
            dialect = session.get_bind().dialect.name
            if dialect == "postgresql":
                pg = pg_insert(BonusResult).values(values)
                session.execute(
                    pg.on_conflict_do_update(
                        index_elements=["campaign_id", "partner_id", "period"],
                        set_={name: pg.excluded[name] for name in _UPDATED},
                    )
                )
            elif dialect == "sqlite":
                lite = sqlite_insert(BonusResult).values(values)
                session.execute(
                    lite.on_conflict_do_update(
                        index_elements=["campaign_id", "partner_id", "period"],
                        set_={name: lite.excluded[name] for name in _UPDATED},
                    )
                )
            else:
                for item in values:
                    session.merge(BonusResult(**item))
