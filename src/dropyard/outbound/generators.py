"""Generators of outbound files that read the ledger: reports and the conversions export.

A generator declares its columns and streams its rows from one database session: the
rows come from the server in batches (`yield_per`) and are written as they arrive, and
aggregates are computed by the database (GROUP BY), never by loading rows here.

What a viewer sees: a brand account its own campaigns' rows; a partner account only the
rows of partners linked to it (`Partner.account_id`), in the campaigns those partners
belong to.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Integer,
    Numeric,
    case,
    cast,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import ColumnElement

from dropyard.ledger.models import Action, Campaign, CampaignPartner, Click, Partner
from dropyard.outbound.ranges import Window, offset_changes
from dropyard.outbound.writer import Cell

YIELD_PER = 1000
Row = tuple[Cell, ...]

ACTION_COLUMNS = (
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
)
PERFORMANCE_COLUMNS = (
    "Date",
    "CampaignId",
    "MediaPartnerId",
    "Clicks",
    "Actions",
    "ReversedActions",
    "SaleAmount",
    "Payout",
    "CurrencyCode",
)


@dataclass(frozen=True)
class Viewer:
    """The account a file is made for: what it may see."""

    account_id: int
    kind: str  # "brand" or "partner"


@dataclass(frozen=True)
class Request:
    """One run of a generator: for whom, which rows, in which time zone, and when."""

    viewer: Viewer
    window: Window
    tz: ZoneInfo
    at: datetime


class Generator(Protocol):
    name: str
    columns: tuple[str, ...]

    def rows(self, session: Session, request: Request) -> Iterator[Row]:
        """The file's rows in order, streamed from `session`."""
        ...


# -- visibility -------------------------------------------------------------------------


def visible(
    campaign_id: InstrumentedAttribute[int],
    partner_id: InstrumentedAttribute[int],
    viewer: Viewer,
) -> ColumnElement[bool]:
    """Rows (of a table with campaign and partner columns) that `viewer` may see."""
    if viewer.kind == "brand":
        return campaign_id.in_(select(Campaign.id).where(Campaign.account_id == viewer.account_id))
    return (
        select(CampaignPartner.partner_id)
        .join(Partner, Partner.id == CampaignPartner.partner_id)
        .where(
            CampaignPartner.campaign_id == campaign_id,
            CampaignPartner.partner_id == partner_id,
            Partner.account_id == viewer.account_id,
        )
        .exists()
    )


def visible_campaigns(viewer: Viewer) -> ColumnElement[bool]:
    """Campaigns `viewer` has rows in: a brand's own, or those its partners belong to."""
    if viewer.kind == "brand":
        return Campaign.account_id == viewer.account_id
    return (
        select(CampaignPartner.campaign_id)
        .join(Partner, Partner.id == CampaignPartner.partner_id)
        .where(CampaignPartner.campaign_id == Campaign.id, Partner.account_id == viewer.account_id)
        .exists()
    )


# -- local days in SQL ------------------------------------------------------------------


def local_day(
    session: Session, column: InstrumentedAttribute[datetime], request: Request
) -> ColumnElement[Any]:
    """The local date (in the request's time zone) of a UTC timestamp column, computed by
    the database. PostgreSQL knows time zones; SQLite gets the offsets in force during the
    window, one CASE branch per DST change."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone(request.tz.key, column), Date)
    window = request.window
    changes = offset_changes(window.start, window.end, request.tz)

    def shifted(seconds: int) -> ColumnElement[Any]:
        return func.date(column, f"{seconds:+d} seconds")

    if len(changes) == 1:
        return shifted(changes[0][1])
    branches = [
        (column < changes[i + 1][0], shifted(changes[i][1])) for i in range(len(changes) - 1)
    ]
    return case(*branches, else_=shifted(changes[-1][1]))


def _as_date(value: object) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


# -- generators -------------------------------------------------------------------------


class ActionExport:
    """Actions of the window, one row each: the `conversions` export and the
    `action_listing` report. A delta window selects actions by their last change."""

    columns: tuple[str, ...] = ACTION_COLUMNS

    def __init__(self, name: str) -> None:
        self.name = name

    def rows(self, session: Session, request: Request) -> Iterator[Row]:
        window = request.window
        if window.empty:
            return
        moment = Action.modified_at if window.delta else Action.event_date
        query = (
            select(
                Action.id,
                Action.campaign_id,
                Action.tracker_id,
                Action.partner_id,
                Action.event_date,
                Action.order_id,
                Action.click_id,
                Action.status,
                Action.amount,
                Action.payout,
                Action.currency,
                Action.modified_at,
            )
            .where(
                moment >= window.start,
                moment < window.end,
                visible(Action.campaign_id, Action.partner_id, request.viewer),
            )
            .order_by(moment, Action.id)
        )
        for row in session.execute(query, execution_options={"yield_per": YIELD_PER}):
            yield tuple(row)


class PerformanceByDay:
    """One row per local day × campaign × partner (× currency, should a campaign's
    actions come in several): clicks, actions, reversed actions, sale amount, payout.

    Actions counts every action that happened that day, reversed or not; ReversedActions
    those of them now reversed; SaleAmount and Payout sum the actions not reversed."""

    name = "performance_by_day"
    columns: tuple[str, ...] = PERFORMANCE_COLUMNS

    def rows(self, session: Session, request: Request) -> Iterator[Row]:
        window = request.window
        if window.empty:
            return
        one = literal_column("1", Integer)
        zero = literal_column("0", Integer)
        no_money = literal_column("0", Numeric(16, 2))
        clicks = (
            select(
                local_day(session, Click.event_date, request).label("day"),
                Click.campaign_id.label("campaign_id"),
                Click.partner_id.label("partner_id"),
                Campaign.currency.label("currency"),
                one.label("clicks"),
                zero.label("actions"),
                zero.label("reversed"),
                no_money.label("amount"),
                no_money.label("payout"),
            )
            .join(Campaign, Campaign.id == Click.campaign_id)
            .where(
                Click.event_date >= window.start,
                Click.event_date < window.end,
                visible(Click.campaign_id, Click.partner_id, request.viewer),
            )
        )
        is_reversed = Action.status == "REVERSED"
        actions = select(
            local_day(session, Action.event_date, request).label("day"),
            Action.campaign_id.label("campaign_id"),
            Action.partner_id.label("partner_id"),
            Action.currency.label("currency"),
            zero.label("clicks"),
            one.label("actions"),
            case((is_reversed, one), else_=zero).label("reversed"),
            case((is_reversed, no_money), else_=Action.amount).label("amount"),
            case((is_reversed, no_money), else_=Action.payout).label("payout"),
        ).where(
            Action.event_date >= window.start,
            Action.event_date < window.end,
            visible(Action.campaign_id, Action.partner_id, request.viewer),
        )
        both = union_all(actions, clicks).subquery()
        keys = (both.c.day, both.c.campaign_id, both.c.partner_id, both.c.currency)
        query = (
            select(
                both.c.day,
                both.c.campaign_id,
                both.c.partner_id,
                func.sum(both.c.clicks),
                func.sum(both.c.actions),
                func.sum(both.c.reversed),
                func.sum(both.c.amount),
                func.sum(both.c.payout),
                both.c.currency,
            )
            .group_by(*keys)
            .order_by(*keys)
        )
        for (
            day,
            campaign,
            partner,
            n_clicks,
            n_actions,
            n_reversed,
            amount,
            payout,
            currency,
        ) in session.execute(query, execution_options={"yield_per": YIELD_PER}):
            yield (
                _as_date(day),
                campaign,
                partner,
                int(n_clicks or 0),
                int(n_actions or 0),
                int(n_reversed or 0),
                _money(amount),
                _money(payout),
                currency,
            )


def _money(value: object) -> Decimal:
    # SQLite sums NUMERIC as floating point: back to cents here.
    return Decimal(str(value)).quantize(Decimal("0.01")) if value is not None else Decimal("0.00")
