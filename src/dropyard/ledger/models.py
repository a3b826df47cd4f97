"""Ledger tables: campaigns (owned by brands), their action trackers, partners."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from dropyard.db.base import Base, UTCDateTime, utcnow


class Campaign(Base):
    __tablename__ = "campaigns"

    # The platform's CampaignId, as partners' files spell it.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    payout_rate: Mapped[Decimal] = mapped_column(Numeric(8, 6))
    lock_days: Mapped[int] = mapped_column(default=30)
    # [{"threshold": "10000.00", "bonus": "100.00"}, ...], ascending by threshold.
    bonus_tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ActionTracker(Base):
    __tablename__ = "action_trackers"

    # The platform's ActionTrackerId: an event type of one campaign.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="Sale")


class Partner(Base):
    __tablename__ = "partners"

    # The platform's MediaPartnerId.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    # The partner account that sees this partner's data, if one exists.
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CampaignPartner(Base):
    __tablename__ = "campaign_partners"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    # Overrides the campaign's rate for this partner when set.
    payout_rate: Mapped[Decimal | None] = mapped_column(Numeric(8, 6), default=None)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
