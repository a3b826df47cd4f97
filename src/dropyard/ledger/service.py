"""Campaigns and partners: the platform data that connections' files refer to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dropyard.accounts import audit
from dropyard.accounts.actors import Actor
from dropyard.accounts.service import find_account
from dropyard.datatypes.currencies import ISO_4217
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Conflict, Invalid, NotFound
from dropyard.ledger.models import Action, ActionTracker, Campaign, CampaignPartner, Partner


def _decimal(value: str | Decimal | float, field: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"{field} '{value}' is not a number", field=field) from None
    if not number.is_finite():
        raise Invalid(f"{field} '{value}' is not a number", field=field)
    return number


def parse_bonus_tiers(raw: Sequence[Any]) -> list[dict[str, str]]:
    """Tiers as `{"threshold": "10000", "bonus": "100"}`; also `"10000:100"` strings."""
    tiers: list[tuple[Decimal, Decimal]] = []
    for item in raw:
        if isinstance(item, str):
            threshold_text, _, bonus_text = item.partition(":")
            threshold = _decimal(threshold_text.strip(), "bonus_tiers")
            bonus = _decimal(bonus_text.strip(), "bonus_tiers")
        elif isinstance(item, dict):
            threshold = _decimal(item.get("threshold", ""), "bonus_tiers")
            bonus = _decimal(item.get("bonus", ""), "bonus_tiers")
        else:
            raise Invalid(f"bonus tier '{item}' is not THRESHOLD:BONUS", field="bonus_tiers")
        if threshold <= 0 or bonus < 0:
            raise Invalid(f"bonus tier '{item}' needs a positive threshold", field="bonus_tiers")
        tiers.append((threshold, bonus))
    tiers.sort()
    if len({t for t, _ in tiers}) != len(tiers):
        raise Invalid("two bonus tiers have the same threshold", field="bonus_tiers")
    return [{"threshold": str(t), "bonus": str(b)} for t, b in tiers]


class LedgerService:
    """Creates and lists campaigns (of brand accounts) and partners, and joins them."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def create_campaign(
        self,
        actor: Actor,
        *,
        account: str | int,
        campaign_id: int,
        name: str,
        currency: str,
        payout_rate: str | Decimal,
        trackers: Sequence[int],
        lock_days: int = 30,
        bonus_tiers: Sequence[Any] = (),
    ) -> Campaign:
        actor.require_role("admin")
        errors: dict[str, str] = {}
        currency = currency.strip().upper()
        if currency not in ISO_4217:
            errors["currency"] = f"currency '{currency}' is not an ISO 4217 code"
        if not 1 <= campaign_id <= 2**31 - 1:
            errors["id"] = f"id '{campaign_id}' must be a positive integer"
        if not 1 <= len(name.strip()) <= 200:
            errors["name"] = "name must be 1-200 characters"
        try:
            rate = _decimal(payout_rate, "payout_rate")
            if not Decimal(0) <= rate <= Decimal(1):
                errors["payout_rate"] = f"payout_rate '{payout_rate}' must be between 0 and 1"
        except Invalid as exc:
            errors.update(exc.errors)
            rate = Decimal(0)
        if not 0 <= lock_days <= 365:
            errors["lock_days"] = f"lock_days '{lock_days}' must be between 0 and 365"
        if not trackers:
            errors["tracker"] = "a campaign needs at least one action tracker id"
        elif any(not 1 <= t <= 2**31 - 1 for t in trackers):
            errors["tracker"] = "action tracker ids must be positive integers"
        try:
            tiers = parse_bonus_tiers(bonus_tiers)
        except Invalid as exc:
            errors.update(exc.errors)
            tiers = []
        if errors:
            raise Invalid.of(errors)
        with transaction(self._sessions) as session:
            owner = find_account(session, account)
            actor.require_account(owner.id, what="account")
            if owner.kind != "brand":
                raise Invalid(
                    f"account '{owner.name}' is a partner; campaigns belong to brands",
                    field="account",
                )
            if session.get(Campaign, campaign_id) is not None:
                raise Conflict(f"campaign {campaign_id} already exists", field="id")
            taken = session.scalars(
                select(ActionTracker.id).where(ActionTracker.id.in_(list(trackers)))
            ).all()
            if taken:
                raise Conflict(f"action tracker {taken[0]} already exists", field="tracker")
            campaign = Campaign(
                id=campaign_id,
                account_id=owner.id,
                name=name.strip(),
                currency=currency,
                payout_rate=rate,
                lock_days=lock_days,
                bonus_tiers=tiers,
            )
            session.add(campaign)
            session.flush()
            session.add_all(ActionTracker(id=t, campaign_id=campaign_id) for t in set(trackers))
            audit.record(
                session,
                actor=actor,
                action="campaign.create",
                target=f"campaign:{campaign_id}",
                account_id=owner.id,
                detail={"name": campaign.name},
            )
            return campaign

    def list_campaigns(self, actor: Actor, *, account: str | int | None = None) -> list[Campaign]:
        with self._sessions() as session:
            query = select(Campaign).order_by(Campaign.id)
            if account is not None:
                owner = find_account(session, account)
                actor.require_account(owner.id, what="account")
                query = query.where(Campaign.account_id == owner.id)
            elif not actor.is_operator:
                query = query.where(Campaign.account_id == actor.account_id)
            return list(session.scalars(query))

    def trackers_of(self, campaign_id: int) -> list[int]:
        with self._sessions() as session:
            return list(
                session.scalars(
                    select(ActionTracker.id).where(ActionTracker.campaign_id == campaign_id)
                )
            )

    def create_partner(
        self, actor: Actor, *, partner_id: int, name: str, account: str | int | None = None
    ) -> Partner:
        actor.require_role("admin")
        errors: dict[str, str] = {}
        if not 1 <= partner_id <= 2**31 - 1:
            errors["id"] = f"id '{partner_id}' must be a positive integer"
        if not 1 <= len(name.strip()) <= 200:
            errors["name"] = "name must be 1-200 characters"
        if errors:
            raise Invalid.of(errors)
        with transaction(self._sessions) as session:
            owner_id: int | None = None
            if account is not None:
                owner = find_account(session, account)
                actor.require_account(owner.id, what="account")
                if owner.kind != "partner":
                    raise Invalid(
                        f"account '{owner.name}' is not a partner account", field="account"
                    )
                owner_id = owner.id
            if session.get(Partner, partner_id) is not None:
                raise Conflict(f"partner {partner_id} already exists", field="id")
            partner = Partner(id=partner_id, name=name.strip(), account_id=owner_id)
            session.add(partner)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="partner.create",
                target=f"partner:{partner_id}",
                account_id=owner_id,
                detail={"name": partner.name},
            )
            return partner

    def join(
        self,
        actor: Actor,
        *,
        partner_id: int,
        campaign_id: int,
        payout_rate: str | Decimal | None = None,
    ) -> CampaignPartner:
        actor.require_role("admin")
        rate = None if payout_rate is None else _decimal(payout_rate, "payout_rate")
        with transaction(self._sessions) as session:
            campaign = _campaign(session, actor, campaign_id)
            if session.get(Partner, partner_id) is None:
                raise NotFound(f"partner {partner_id} does not exist", field="partner")
            if session.get(CampaignPartner, (campaign.id, partner_id)) is not None:
                raise Conflict(f"partner {partner_id} is already in campaign {campaign_id}")
            link = CampaignPartner(campaign_id=campaign.id, partner_id=partner_id, payout_rate=rate)
            session.add(link)
            audit.record(
                session,
                actor=actor,
                action="partner.join",
                target=f"campaign:{campaign_id}",
                account_id=campaign.account_id,
                detail={"partner": partner_id},
            )
            return link

    def list_partners(self, actor: Actor) -> list[Partner]:
        """The operator sees every partner; a brand those in its campaigns; a partner itself."""
        with self._sessions() as session:
            query = select(Partner).order_by(Partner.id)
            if not actor.is_operator:
                in_campaigns = (
                    select(CampaignPartner.partner_id)
                    .join(Campaign, Campaign.id == CampaignPartner.campaign_id)
                    .where(Campaign.account_id == actor.account_id)
                )
                query = query.where(
                    (Partner.account_id == actor.account_id) | Partner.id.in_(in_campaigns)
                )
            return list(session.scalars(query))


def _campaign(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or not (actor.is_operator or campaign.account_id == actor.account_id):
        raise NotFound(f"campaign {campaign_id} does not exist", field="campaign")
    return campaign


def lock_due(sessions: SessionFactory, *, now: datetime | None = None) -> int:
    """PENDING actions whose lock period has passed become LOCKED. Returns how many."""
    moment = now or utcnow()
    with transaction(sessions) as session:
        done = session.execute(
            update(Action)
            .where(Action.status == "PENDING", Action.locks_at <= moment)
            .values(status="LOCKED", modified_at=moment)
        )
        return int(done.rowcount or 0)  # type: ignore[attr-defined]
