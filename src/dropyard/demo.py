"""`dropyard demo`: an empty data dir filled with a brand, two partners, a campaign with
bonus tiers, clicks and conversions, an inbound push connection and an outbound hosted
report connection — and how to push a file and pull a report with OpenSSH `sftp`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from dropyard.accounts.actors import operator
from dropyard.app import Dropyard
from dropyard.connections import wizard
from dropyard.db.base import utcnow
from dropyard.errors import Conflict

CAMPAIGN, TRACKER, PARTNERS = 1001, 5001, (2001, 2002)


@dataclass(frozen=True)
class Demo:
    login: str
    password: str
    inbound_folder: str
    outbound_folder: str
    report_name: str | None
    sftp_port: int
    sample: Path


def _walk(app: Dropyard, account: int, steps: list[dict[str, object]]) -> wizard.WizardState:
    actor = operator("demo")
    ctx = app.connections.wizard_context(actor, account=account)
    state = wizard.start()
    for data in steps:
        state = wizard.submit(state, data, ctx)
    return state


def _feed(app: Dropyard, connection_id: int, name: str, text: str) -> None:
    spool = app.files.open_spool()
    spool.write(text.encode())
    view = app.files.commit(
        spool, connection_id=connection_id, name=name, source="demo", actor=operator("demo")
    )
    app.processor.process(view.id)


def seed(app: Dropyard) -> Demo:
    """Fill an installation that has no accounts yet. Conflict if it has some."""
    actor = operator("demo")
    if any(a.name == "Demo Brand" for a in app.accounts.list_accounts(actor)):
        raise Conflict("the demo is already here; use a new --data-dir for a fresh one")
    brand = app.accounts.create_account(actor, name="Demo Brand", kind="brand")
    app.ledger.create_campaign(
        actor,
        account=brand.id,
        campaign_id=CAMPAIGN,
        name="Demo US",
        currency="USD",
        payout_rate="0.08",
        trackers=[TRACKER],
        lock_days=0,
        bonus_tiers=["1000:50", "5000:250"],
    )
    for partner_id, name in zip(PARTNERS, ("Blog One", "Deals Two"), strict=True):
        app.ledger.create_partner(actor, partner_id=partner_id, name=name)
        app.ledger.join(actor, partner_id=partner_id, campaign_id=CAMPAIGN)

    inbound_state = _walk(
        app,
        brand.id,
        [
            {"name": "Demo conversions", "direction": "inbound"},
            {"data_type": "conversions"},
            {"method": "sftp", "methodology": "push", "details": {}},
            {"new": {"kind": "hosted_password", "name": "Demo partner login"}},
        ],
    )
    inbound = app.connections.create(actor, account=brand.id, state=inbound_state)
    assert inbound.provisioned is not None and inbound.provisioned.password
    credential_id = inbound.provisioned.credential.id
    clicks_state = _walk(
        app,
        brand.id,
        [
            {"name": "Demo clicks", "direction": "inbound"},
            {"data_type": "clicks"},
            {"method": "sftp", "methodology": "push", "details": {}},
            {"credential_id": credential_id},
        ],
    )
    clicks = app.connections.create(actor, account=brand.id, state=clicks_state)
    report_state = _walk(
        app,
        brand.id,
        [
            {"name": "Demo daily report", "direction": "outbound"},
            {"data_type": "reports"},
            {
                "method": "sftp",
                "methodology": "hosted",
                "details": {"report": "performance_by_day", "range": "last_7_days"},
            },
            {"credential_id": credential_id},
        ],
    )
    report = app.connections.create(actor, account=brand.id, state=report_state)

    rng = random.Random(7)  # noqa: S311 - demo data, not a secret
    now = utcnow().replace(microsecond=0)
    click_rows, order_rows = (
        ["ClickId,CampaignId,MediaPartnerId,EventDate"],
        ["CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CurrencyCode,Amount"],
    )
    for n in range(200):
        at = now - timedelta(days=rng.randint(1, 6), minutes=rng.randint(0, 1200))
        click_id = f"clk-{n:04d}"
        click_rows.append(f"{click_id},{CAMPAIGN},{rng.choice(PARTNERS)},{at.isoformat()}")
        if n % 4 == 0:
            amount = rng.randint(1000, 30000) / 100
            order_at = (at + timedelta(minutes=5)).isoformat()
            order_rows.append(
                f"{CAMPAIGN},{TRACKER},{order_at},ORD-{n:04d},{click_id},USD,{amount:.2f}"
            )
    _feed(app, clicks.connection.id, "demo_clicks.csv", "\n".join(click_rows) + "\n")
    _feed(app, inbound.connection.id, "demo_orders.csv", "\n".join(order_rows) + "\n")
    made = app.outbound.run(report.connection.id)
    sample = app.settings.data_dir / "demo" / "orders.csv"
    sample.parent.mkdir(parents=True, exist_ok=True)
    sample.write_text(
        "CampaignId,ActionTrackerId,EventDate,OrderId,MediaPartnerId,CurrencyCode,Amount\n"
        f"{CAMPAIGN},{TRACKER},{now.isoformat()},MY-1,{PARTNERS[0]},USD,42.00\n"
        f"{CAMPAIGN},{TRACKER},not-a-date,MY-2,{PARTNERS[0]},USD,10.00\n"
    )
    return Demo(
        login=inbound.provisioned.credential.login or "",
        password=inbound.provisioned.password,
        inbound_folder=inbound.connection.folder,
        outbound_folder=report.connection.folder,
        report_name=made.file.name if made.file else None,
        sftp_port=app.settings.sftp_port,
        sample=sample.resolve(),
    )


def instructions(demo: Demo, *, host: str) -> str:
    target = f"{demo.login}@{host}"
    return f"""
  The demo is ready. One SFTP login reaches three folders; its password is shown only now.

    login:    {demo.login}
    password: {demo.password}

  Push a conversions file (the result appears next to it within seconds):
    sftp -P {demo.sftp_port} {target}
      sftp> put {demo.sample} /{demo.inbound_folder}/
      sftp> ls /{demo.inbound_folder}
      sftp> get /{demo.inbound_folder}/result_orders.csv_summary.json

  Pull the report:
      sftp> get /{demo.outbound_folder}/{demo.report_name or "<the newest file>"}
"""
