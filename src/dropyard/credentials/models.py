"""Tables of the credentials domain.

A credential is a named login that belongs to one account. Its secret material lives in
versions (`CredentialSecret`): rotation adds a version and gives the old one an end, so
both work during the overlap window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dropyard.db.base import Base, UTCDateTime, utcnow

CredentialKind = Literal[
    "hosted_password", "hosted_public_key", "remote_password", "remote_key_pair"
]
CREDENTIAL_KINDS: tuple[CredentialKind, ...] = (
    "hosted_password",
    "hosted_public_key",
    "remote_password",
    "remote_key_pair",
)
HOSTED_KINDS: frozenset[str] = frozenset({"hosted_password", "hosted_public_key"})


class Credential(Base):
    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    # Hosted kinds: the generated login name, unique across the installation.
    login: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    # Remote kinds: the user name on the partner's server.
    username: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class CredentialSecret(Base):
    __tablename__ = "credential_secrets"

    id: Mapped[int] = mapped_column(primary_key=True)
    credential_id: Mapped[int] = mapped_column(ForeignKey("credentials.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # None: valid until rotated. Set on rotation to the end of the overlap window.
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    public_key: Mapped[str | None] = mapped_column(Text, default=None)
    fingerprint: Mapped[str | None] = mapped_column(String(100), default=None)
    sealed_secret: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
