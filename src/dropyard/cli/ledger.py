"""`dropyard campaigns` and `dropyard partners`: the platform data files refer to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer

from dropyard.cli.common import emit, state, to_jsonable
from dropyard.cli.output import (
    JsonFlag,
    cli_actor,
    console_for,
    decimal_text,
    guarded,
    pairs,
    shown,
    table,
)
from dropyard.ledger.models import Campaign, CampaignPartner, Partner

campaigns_app = typer.Typer(no_args_is_help=True, help="Campaigns of brand accounts.")
partners_app = typer.Typer(no_args_is_help=True, help="Partners (media partners).")


def campaign_json(campaign: Campaign, trackers: Sequence[int]) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "account_id": campaign.account_id,
        "name": campaign.name,
        "currency": campaign.currency,
        "payout_rate": decimal_text(campaign.payout_rate),
        "lock_days": campaign.lock_days,
        "bonus_tiers": list(campaign.bonus_tiers),
        "trackers": sorted(trackers),
        "created_at": to_jsonable(campaign.created_at),
    }


def partner_json(partner: Partner) -> dict[str, Any]:
    return {
        "id": partner.id,
        "name": partner.name,
        "account_id": partner.account_id,
        "created_at": to_jsonable(partner.created_at),
    }


def membership_json(link: CampaignPartner) -> dict[str, Any]:
    return {
        "campaign_id": link.campaign_id,
        "partner_id": link.partner_id,
        "payout_rate": None if link.payout_rate is None else decimal_text(link.payout_rate),
        "joined_at": to_jsonable(link.joined_at),
    }


@campaigns_app.command("create")
@guarded
def create_campaign(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="the brand's name or id")],
    campaign_id: Annotated[int, typer.Option("--id", help="the platform's CampaignId")],
    name: Annotated[str, typer.Option("--name")],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code, e.g. USD")],
    payout_rate: Annotated[
        str, typer.Option("--payout-rate", help="share of the sale paid out, 0 to 1")
    ],
    trackers: Annotated[
        list[int] | None,
        typer.Option("--tracker", help="an ActionTrackerId of the campaign; repeat for more"),
    ] = None,
    lock_days: Annotated[int, typer.Option("--lock-days", help="days before actions lock")] = 30,
    bonus_tiers: Annotated[
        list[str] | None,
        typer.Option("--bonus-tier", help="THRESHOLD:BONUS, e.g. 10000:100; repeat for more"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a campaign of a brand account, with its action trackers."""
    app = state(ctx).app()
    campaign = app.ledger.create_campaign(
        cli_actor(),
        account=account,
        campaign_id=campaign_id,
        name=name,
        currency=currency,
        payout_rate=payout_rate,
        trackers=trackers or [],
        lock_days=lock_days,
        bonus_tiers=bonus_tiers or [],
    )
    data = campaign_json(campaign, app.ledger.trackers_of(campaign.id))

    def human() -> None:
        console = console_for(as_json)
        console.print(f"Campaign {campaign.id} '{campaign.name}' created.")
        tiers = ", ".join(f"{t['threshold']}:{t['bonus']}" for t in data["bonus_tiers"])
        pairs(
            console,
            [
                ("currency", campaign.currency),
                ("payout rate", data["payout_rate"]),
                ("trackers", ", ".join(map(str, data["trackers"]))),
                ("lock days", campaign.lock_days),
                ("bonus tiers", tiers or "(none)"),
            ],
        )

    emit(data, as_json=as_json, human=human)


@campaigns_app.command("list")
@guarded
def list_campaigns(
    ctx: typer.Context,
    account: Annotated[
        str | None, typer.Option("--account", help="only this brand (name or id)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List campaigns."""
    app = state(ctx).app()
    campaigns = app.ledger.list_campaigns(cli_actor(), account=account)
    data = [campaign_json(c, app.ledger.trackers_of(c.id)) for c in campaigns]

    def human() -> None:
        rows = [
            (
                c["id"],
                c["account_id"],
                c["name"],
                c["currency"],
                c["payout_rate"],
                shown(c["trackers"]),
            )
            for c in data
        ]
        columns = ("id", "account", "name", "currency", "payout rate", "trackers")
        table(console_for(as_json), columns, rows)

    emit(data, as_json=as_json, human=human)


@partners_app.command("create")
@guarded
def create_partner(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name")],
    partner_id: Annotated[int, typer.Option("--id", help="the platform's MediaPartnerId")],
    account: Annotated[
        str | None,
        typer.Option("--account", help="the partner account that sees its data (name or id)"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a partner."""
    partner = (
        state(ctx)
        .app()
        .ledger.create_partner(cli_actor(), partner_id=partner_id, name=name, account=account)
    )
    emit(
        partner_json(partner),
        as_json=as_json,
        human=lambda: console_for(as_json).print(f"Partner {partner.id} '{partner.name}' created."),
    )


@partners_app.command("join")
@guarded
def join_campaign(
    ctx: typer.Context,
    partner_id: Annotated[int, typer.Option("--partner", help="the partner's id")],
    campaign_id: Annotated[int, typer.Option("--campaign", help="the campaign's id")],
    payout_rate: Annotated[
        str | None,
        typer.Option("--payout-rate", help="this partner's rate instead of the campaign's"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a partner to a campaign."""
    link = (
        state(ctx)
        .app()
        .ledger.join(
            cli_actor(), partner_id=partner_id, campaign_id=campaign_id, payout_rate=payout_rate
        )
    )
    data = membership_json(link)
    rate = data["payout_rate"] or "the campaign's"
    emit(
        data,
        as_json=as_json,
        human=lambda: console_for(as_json).print(
            f"Partner {partner_id} joined campaign {campaign_id} (payout rate: {rate})."
        ),
    )


@partners_app.command("list")
@guarded
def list_partners(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List partners."""
    partners = state(ctx).app().ledger.list_partners(cli_actor())

    def human() -> None:
        rows = [(p.id, p.name, p.account_id) for p in partners]
        table(console_for(as_json), ("id", "name", "account"), rows)

    emit([partner_json(p) for p in partners], as_json=as_json, human=human)
