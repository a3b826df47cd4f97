"""Tables that make nodes interchangeable: none of this lives in one node's memory or disk."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from dropyard.db.base import Base, UTCDateTime, utcnow


class InstallationSecret(Base):
    """A secret every node needs alike (SSH host keys, the TLS certificate and key),
    sealed under the master key."""

    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Ban(Base):
    """The defender's view of one client address, shared by every node."""

    __tablename__ = "bans"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    banned_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # How many bans so far: each one lasts twice as long as the one before.
    strikes: Mapped[int] = mapped_column(default=0)


class Lease(Base):
    """A named lease (the scheduler's leadership): held by one node until it expires."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
