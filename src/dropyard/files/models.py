"""Tables of the files domain: one row per file, and its history of state changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dropyard.db.base import Base, UTCDateTime, utcnow

InboundState = Literal[
    "received", "processing", "processed", "partial", "failed", "duplicate", "dead"
]
OutboundState = Literal["generated", "available", "downloaded", "delivered", "expired"]
FileState = InboundState | OutboundState

INBOUND_STATES: tuple[str, ...] = (
    "received",
    "processing",
    "processed",
    "partial",
    "failed",
    "duplicate",
    "dead",
)
OUTBOUND_STATES: tuple[str, ...] = (
    "generated",
    "available",
    "downloaded",
    "delivered",
    "expired",
    "failed",
)


class File(Base):
    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_connection_created", "connection_id", "created_at"),
        Index("ix_files_connection_sha256", "connection_id", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(36), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    direction: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(500))
    # How it came: sftp, ftp, email, pull, generated.
    source: Mapped[str] = mapped_column(String(16))
    source_address: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    # A worker's claim: who holds the file and until when (a dead worker's claim expires).
    claim_token: Mapped[str | None] = mapped_column(String(36), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Retry after a transient error: not before this time.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Outbound: the run that made it, its range, and where it was delivered.
    run_id: Mapped[str | None] = mapped_column(String(36), default=None)
    range_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    range_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    total_rows: Mapped[int | None] = mapped_column(default=None)
    ok_rows: Mapped[int | None] = mapped_column(default=None)
    error_rows: Mapped[int | None] = mapped_column(default=None)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class FileEvent(Base):
    """One state change of a file: the history a person reads. Append-only."""

    __tablename__ = "file_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ScheduledRun(Base):
    """A connection's run for one due time, claimed once however many schedulers run."""

    __tablename__ = "scheduled_runs"
    __table_args__ = (UniqueConstraint("connection_id", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    run_id: Mapped[str] = mapped_column(String(36), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
