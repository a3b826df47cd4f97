"""Ledger tables: campaigns (owned by brands), their action trackers, partners."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Numeric, String, UniqueConstraint
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


class Click(Base):
    __tablename__ = "clicks"
    __table_args__ = (UniqueConstraint("account_id", "click_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    click_id: Mapped[str] = mapped_column(String(128))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    event_date: Mapped[datetime] = mapped_column(UTCDateTime())
    landing_page_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    referring_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    sub_id1: Mapped[str | None] = mapped_column(String(255), default=None)
    sub_id2: Mapped[str | None] = mapped_column(String(255), default=None)
    sub_id3: Mapped[str | None] = mapped_column(String(255), default=None)
    device_type: Mapped[str | None] = mapped_column(String(16), default=None)
    country_code: Mapped[str | None] = mapped_column(String(2), default=None)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), default=None)


class Action(Base):
    """A conversion: one order of one campaign's event type, attributed to a partner."""

    __tablename__ = "actions"
    __table_args__ = (
        UniqueConstraint("campaign_id", "tracker_id", "order_id"),
        Index("ix_actions_campaign_event", "campaign_id", "event_date"),
        Index("ix_actions_tracker_order", "tracker_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    tracker_id: Mapped[int] = mapped_column(ForeignKey("action_trackers.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(64))
    click_id: Mapped[str | None] = mapped_column(String(128), default=None)
    customer_id: Mapped[str | None] = mapped_column(String(64), default=None)
    customer_status: Mapped[str | None] = mapped_column(String(16), default=None)
    promo_code: Mapped[str | None] = mapped_column(String(64), default=None)
    event_date: Mapped[datetime] = mapped_column(UTCDateTime())
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    original_amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    payout: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    locks_at: Mapped[datetime] = mapped_column(UTCDateTime())
    modification_count: Mapped[int] = mapped_column(default=0)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ActionItem(Base):
    __tablename__ = "action_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id"), index=True)
    sku: Mapped[str | None] = mapped_column(String(255), default=None)
    category: Mapped[str | None] = mapped_column(String(255), default=None)
    quantity: Mapped[int] = mapped_column(default=1)
    item_price: Mapped[Decimal | None] = mapped_column(Numeric(16, 2), default=None)
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))


class ActionModification(Base):
    """Every change of an action's amount: who, when, from which file, old and new."""

    __tablename__ = "action_modifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id"), index=True)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), default=None)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str] = mapped_column(String(32))
    old_amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    new_amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    old_status: Mapped[str] = mapped_column(String(16))
    new_status: Mapped[str] = mapped_column(String(16))


class Catalog(Base):
    """Which generation of a connection's catalog readers see: flipped atomically."""

    __tablename__ = "catalogs"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), primary_key=True)
    generation: Mapped[int] = mapped_column(default=0)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), default=None)
    item_count: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CatalogItem(Base):
    __tablename__ = "catalog_items"
    __table_args__ = (UniqueConstraint("connection_id", "generation", "item_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    generation: Mapped[int] = mapped_column()
    item_id: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(String(150))
    link: Mapped[str] = mapped_column(String(2048))
    image_link: Mapped[str] = mapped_column(String(2048))
    price: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    currency: Mapped[str] = mapped_column(String(3))
    sale_price: Mapped[Decimal | None] = mapped_column(Numeric(16, 2), default=None)
    availability: Mapped[str] = mapped_column(String(16))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class BonusResult(Base):
    """A campaign partner's bonus for one calendar month, as last computed."""

    __tablename__ = "bonus_results"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    qualifying_actions: Mapped[int] = mapped_column(default=0)
    qualifying_amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    tier_reached: Mapped[int] = mapped_column(default=0)
    bonus_amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
