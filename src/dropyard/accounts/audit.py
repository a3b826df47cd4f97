"""The append-only audit log: every change, login and transfer, with who, what and where."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dropyard.accounts.actors import Actor
from dropyard.accounts.models import AuditEvent
from dropyard.db.engine import SessionFactory, transaction

_SECRET_KEYS = ("password", "secret", "token", "private")


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target: str = "",
    account_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Add one event in the caller's transaction, so it commits with the change itself."""
    clean = {k: v for k, v in (detail or {}).items() if not any(s in k for s in _SECRET_KEYS)}
    session.add(
        AuditEvent(
            account_id=account_id if account_id is not None else actor.account_id,
            actor=f"{actor.kind}:{actor.name}",
            action=action,
            target=target,
            source=actor.source,
            detail=clean,
        )
    )


def events(session: Session, *, account_id: int | None, limit: int = 100) -> Sequence[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(AuditEvent.account_id == account_id)
    return session.scalars(query).all()


class AuditLog:
    """Writes events in their own transaction, for what has no other change to join."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def write(
        self,
        *,
        actor: Actor,
        action: str,
        target: str = "",
        account_id: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        with transaction(self._sessions) as session:
            record(
                session,
                actor=actor,
                action=action,
                target=target,
                account_id=account_id,
                detail=detail,
            )

    def recent(self, *, account_id: int | None, limit: int = 100) -> list[AuditEvent]:
        with self._sessions() as session:
            return list(events(session, account_id=account_id, limit=limit))
