"""A small ledger to report on: one brand, one campaign, two partners (one with an account
of its own), and outbound connections made through the wizard."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from dropyard.accounts.actors import operator
from dropyard.app import Dropyard
from dropyard.connections.models import Connection
from dropyard.ledger.models import Action, Click
from dropyard.outbound.service import OutboundService
from tests.support import unique, walk_wizard

OP = operator("tests")
CAMPAIGN = 1001
TRACKER = 5001
OTHER_CAMPAIGN = 1002
OTHER_TRACKER = 5002
PARTNER_A = 7001  # has its own partner account
PARTNER_B = 7002
REPORT = {"report": "performance_by_day", "range": "yesterday", "format": "csv"}


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


class Clock:
    """A clock tests set by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    app: Dropyard
    tmp: Path
    brand_id: int
    partner_account_id: int
    other_brand_id: int
    orders: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def connection(
        self,
        details: Mapping[str, Any] | None = None,
        *,
        data_type: str = "reports",
        account: int | None = None,
        methodology: str = "hosted",
        name: str | None = None,
        created_at: datetime | None = None,
    ) -> int:
        credential: dict[str, Any] = {"new": {"kind": "hosted_password", "name": unique("login")}}
        if methodology == "deliver":
            credential = {
                "new": {
                    "kind": "remote_password",
                    "name": unique("theirs"),
                    "username": "bob",
                    "password": "correct horse battery staple",
                }
            }
        created = walk_wizard(
            self.app,
            OP,
            account=account or self.brand_id,
            name=name or unique("Feed"),
            direction="outbound",
            data_type=data_type,
            method="sftp",
            methodology=methodology,
            details=dict(REPORT if details is None else details),
            credential=credential,
        )
        self.set_created(created.connection.id, created_at or datetime(2026, 1, 1, tzinfo=UTC))
        return created.connection.id

    def set_created(self, connection_id: int, when: datetime) -> None:
        with self.app.sessions() as s, s.begin():
            s.execute(
                update(Connection).where(Connection.id == connection_id).values(created_at=when)
            )

    def service(self, clock: Callable[[], datetime] | None = None) -> OutboundService:
        return OutboundService(
            self.app.sessions,
            self.app.files,
            self.app.storage,
            work_dir=self.tmp / "work",
            **({"clock": clock} if clock else {}),
        )

    def click(self, when: datetime, partner: int = PARTNER_A, campaign: int = CAMPAIGN) -> None:
        with self.app.sessions() as s, s.begin():
            s.add(
                Click(
                    account_id=self.brand_id if campaign == CAMPAIGN else self.other_brand_id,
                    click_id=f"clk-{next(self.orders)}",
                    campaign_id=campaign,
                    partner_id=partner,
                    event_date=when,
                )
            )

    def action(
        self,
        when: datetime,
        amount: str,
        *,
        partner: int = PARTNER_A,
        status: str = "PENDING",
        campaign: int = CAMPAIGN,
        modified: datetime | None = None,
        order: str | None = None,
        click_id: str | None = None,
    ) -> int:
        value = Decimal(amount)
        with self.app.sessions() as s, s.begin():
            row = Action(
                account_id=self.brand_id if campaign == CAMPAIGN else self.other_brand_id,
                campaign_id=campaign,
                tracker_id=TRACKER if campaign == CAMPAIGN else OTHER_TRACKER,
                partner_id=partner,
                order_id=order or f"ORD-{next(self.orders)}",
                click_id=click_id,
                event_date=when,
                currency="USD",
                amount=Decimal(0) if status == "REVERSED" else value,
                original_amount=value,
                payout=Decimal(0)
                if status == "REVERSED"
                else (value / 10).quantize(Decimal("0.01")),
                status=status,
                locks_at=when + timedelta(days=30),
                created_at=modified or when,
                modified_at=modified or when,
            )
            s.add(row)
            s.flush()
            return row.id

    def read(self, connection_id: int, name: str) -> bytes:
        with self.app.files.open_folder_file(connection_id, name) as handle:
            return handle.read()

    def table(self, connection_id: int, name: str, delimiter: str = ",") -> list[list[str]]:
        data = self.read(connection_id, name)
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))


@pytest.fixture
def world(app: Dropyard, tmp_path: Path) -> World:
    brand = app.accounts.create_account(OP, name="Acme", kind="brand", timezone="Europe/Paris")
    other = app.accounts.create_account(OP, name="Other Brand", kind="brand")
    partner_account = app.accounts.create_account(OP, name="Pat Media", kind="partner")
    app.ledger.create_campaign(
        OP,
        account=brand.id,
        campaign_id=CAMPAIGN,
        name="Shoes",
        currency="USD",
        payout_rate="0.1",
        trackers=[TRACKER],
        bonus_tiers=["100:10", "500:75"],
    )
    app.ledger.create_campaign(
        OP,
        account=other.id,
        campaign_id=OTHER_CAMPAIGN,
        name="Hats",
        currency="USD",
        payout_rate="0.1",
        trackers=[OTHER_TRACKER],
    )
    app.ledger.create_partner(OP, partner_id=PARTNER_A, name="Pat", account=partner_account.id)
    app.ledger.create_partner(OP, partner_id=PARTNER_B, name="Bee")
    for campaign in (CAMPAIGN, OTHER_CAMPAIGN):
        for partner in (PARTNER_A, PARTNER_B):
            app.ledger.join(OP, partner_id=partner, campaign_id=campaign)
    return World(app, tmp_path, brand.id, partner_account.id, other.id)
