"""What pulls remember: every remote file (or mailbox message) taken, so none is taken twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dropyard.db.base import Base, UTCDateTime, utcnow


class RemoteTaken(Base):
    """One remote file taken by a pull: (name, size, mtime) identifies the version taken.

    For a mailbox, `name` is `imap:<uidvalidity>:<uid>` and size/mtime are the message's.
    """

    __tablename__ = "remote_taken"
    __table_args__ = (UniqueConstraint("connection_id", "name", "size", "mtime"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"), index=True)
    name: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    # Seconds since the epoch as the server reports them (whole seconds; 0 when unknown).
    mtime: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"), default=None)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
