"""Campaigns of a brand account and the partners that join them."""

from __future__ import annotations

from fastapi import APIRouter

from dropyard.ledger.models import Campaign
from dropyard.web.api.deps import Caller, CallerDep
from dropyard.web.api.schemas import (
    CampaignCreate,
    CampaignOut,
    JoinCreate,
    MembershipOut,
    PartnerCreate,
    PartnerOut,
)

router = APIRouter(tags=["ledger"])


def _campaign(who: Caller, campaign: Campaign) -> CampaignOut:
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        currency=campaign.currency,
        payout_rate=campaign.payout_rate,
        lock_days=campaign.lock_days,
        bonus_tiers=list(campaign.bonus_tiers),
        trackers=who.app.ledger.trackers_of(campaign.id),
        created_at=campaign.created_at,
    )


@router.get("/campaigns")
def list_campaigns(who: CallerDep) -> list[CampaignOut]:
    campaigns = who.app.ledger.list_campaigns(who.actor, account=who.account_id)
    return [_campaign(who, campaign) for campaign in campaigns]


@router.post("/campaigns", status_code=201)
def create_campaign(body: CampaignCreate, who: CallerDep) -> CampaignOut:
    """Brand accounts only; a partner account is answered 422."""
    campaign = who.app.ledger.create_campaign(
        who.actor,
        account=who.account_id,
        campaign_id=body.id,
        name=body.name,
        currency=body.currency,
        payout_rate=body.payout_rate,
        trackers=body.trackers,
        lock_days=body.lock_days,
        bonus_tiers=[tier.model_dump(mode="json") for tier in body.bonus_tiers],
    )
    return _campaign(who, campaign)


@router.get("/partners")
def list_partners(who: CallerDep) -> list[PartnerOut]:
    """The partners in the account's campaigns, or a partner account's own."""
    return [PartnerOut.model_validate(p) for p in who.app.ledger.list_partners(who.actor)]


@router.post("/partners", status_code=201)
def create_partner(body: PartnerCreate, who: CallerDep) -> PartnerOut:
    """A partner account creates its own partner record; a brand one it can then join to
    its campaigns."""
    account = who.app.accounts.get_account(who.actor, who.account_id)
    owner = account.id if account.kind == "partner" else None
    partner = who.app.ledger.create_partner(
        who.actor, partner_id=body.id, name=body.name, account=owner
    )
    return PartnerOut.model_validate(partner)


@router.post("/partners/{partner_id}/join", status_code=201)
def join_campaign(partner_id: int, body: JoinCreate, who: CallerDep) -> MembershipOut:
    """Add a partner to one of the account's campaigns."""
    link = who.app.ledger.join(
        who.actor, partner_id=partner_id, campaign_id=body.campaign_id, payout_rate=body.payout_rate
    )
    return MembershipOut.model_validate(link)
