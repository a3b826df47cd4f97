"""Small read-only queries the console needs and no service offers yet: the signed-in user
as stored now, and the dashboard's figures from the `files` table.

Every query is scoped by the account id it is given, which the caller takes from the
signed-in user, never from the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from dropyard.accounts.models import Account, User
from dropyard.db.engine import SessionFactory
from dropyard.files.models import File

# A file that ended well: imported (wholly or partly), or an outbound file that went out.
SUCCESS_STATES = ("processed", "partial", "available", "downloaded", "delivered")
FAILURE_STATES = ("failed", "dead")


@dataclass(frozen=True)
class SignedInUser:
    """A user as the database has it now: a role change or a disabled user takes effect
    at the next request, not at the next sign-in."""

    email: str
    account_id: int
    account_name: str
    timezone: str
    role: str


@dataclass(frozen=True)
class Dashboard:
    files_today: int
    failures_today: int
    last_success: dict[int, datetime]  # connection id -> when its last file ended well


def signed_in_user(sessions: SessionFactory, email: str) -> SignedInUser | None:
    """The enabled user with this email, or None."""
    with sessions() as session:
        found = session.execute(
            select(User.email, User.account_id, User.role, Account.name, Account.timezone)
            .join(Account, Account.id == User.account_id)
            .where(User.email == email, User.disabled_at.is_(None))
        ).first()
    if found is None:
        return None
    return SignedInUser(
        email=found.email,
        account_id=found.account_id,
        account_name=found.name,
        timezone=found.timezone,
        role=found.role,
    )


def dashboard(sessions: SessionFactory, *, account_id: int, since: datetime) -> Dashboard:
    """Files received or generated since `since` (the start of the account's today),
    those that failed since then, and each connection's last success ever."""
    ended = func.coalesce(File.finished_at, File.updated_at)
    with sessions() as session:
        files_today = session.scalar(
            select(func.count(File.id)).where(
                File.account_id == account_id, File.created_at >= since
            )
        )
        failures_today = session.scalar(
            select(func.count(File.id)).where(
                File.account_id == account_id,
                File.state.in_(FAILURE_STATES),
                File.updated_at >= since,
            )
        )
        rows = session.execute(
            select(File.connection_id, func.max(ended))
            .where(File.account_id == account_id, File.state.in_(SUCCESS_STATES))
            .group_by(File.connection_id)
        ).all()
    # max() keeps the column's type, so SQLite's text comes back as an aware datetime too.
    last = {int(cid): at for cid, at in rows if isinstance(at, datetime)}
    return Dashboard(
        files_today=int(files_today or 0),
        failures_today=int(failures_today or 0),
        last_success=last,
    )
