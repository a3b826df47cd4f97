"""The connection table. Method-specific details are a validated JSON document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dropyard.db.base import Base, UTCDateTime, utcnow


class Connection(Base):
    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        UniqueConstraint("account_id", "folder"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The hosted folder's name: the name lowercased, spaces as "_".
    folder: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(16))
    data_type: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(16))
    methodology: Mapped[str] = mapped_column(String(16))
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id"), default=None, index=True
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Email push: the generated drop address.
    email_address: Mapped[str | None] = mapped_column(String(254), default=None, unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Pull/deliver: the last transfer's error (e.g. a changed host key), shown until cleared.
    remote_error: Mapped[str | None] = mapped_column(Text, default=None)
    remote_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # A changed host key or certificate: what the server presented, for a user to re-approve.
    presented_fingerprint: Mapped[str | None] = mapped_column(String(200), default=None)
