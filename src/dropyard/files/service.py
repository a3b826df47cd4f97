"""File records: the one place where a transfer finishes, folder contents, and history.

`commit` is the end of every inbound transfer, whatever the protocol: fsync, checksum,
atomic move into the connection's inbox, a `files` row in state `received` with its first
history event, a receipt in the connection's folder, and a nudge to the job queue. A
protocol never calls the pipeline itself.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from dropyard.accounts import audit
from dropyard.accounts.actors import Actor
from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import NotFound
from dropyard.files import names
from dropyard.files.models import File, FileEvent
from dropyard.files.spool import Spool
from dropyard.storage.base import ObjectInfo, Storage

log = logging.getLogger(__name__)

Notify = Callable[[int], None]


@dataclass(frozen=True)
class FileView:
    id: int
    trace_id: str
    account_id: int
    connection_id: int
    direction: str
    name: str
    size: int
    sha256: str
    source: str
    state: str
    attempts: int
    total_rows: int | None
    ok_rows: int | None
    error_rows: int | None
    summary: dict[str, Any] | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


# Called inside the commit's transaction with the new rows, so what it adds (a pull's
# `remote_taken` row) commits or rolls back with them.
OnRecord = Callable[[Session, Sequence[FileView]], None]


@dataclass(frozen=True)
class EventView:
    at: datetime
    state: str
    reason: str


def folder_prefix(connection_id: int) -> str:
    return f"folders/{connection_id}"


def inbox_key(connection_id: int, trace_id: str) -> str:
    return f"inbox/{connection_id}/{trace_id}"


class FileService:
    def __init__(
        self,
        sessions: SessionFactory,
        storage: Storage,
        *,
        spool_dir: Path,
        max_file_bytes: int,
        notify: Notify | None = None,
    ) -> None:
        self._sessions = sessions
        self._storage = storage
        self._spool_dir = spool_dir
        self._max_file_bytes = max_file_bytes
        self._notify = notify

    def set_notify(self, notify: Notify) -> None:
        self._notify = notify

    # -- the end of every inbound transfer ---------------------------------------------

    def open_spool(self, *, limit: int | None = None) -> Spool:
        return Spool(self._spool_dir, limit=limit or self._max_file_bytes)

    def commit(
        self,
        spool: Spool,
        *,
        connection_id: int,
        name: str,
        source: str,
        actor: Actor,
        address: str = "",
        on_record: OnRecord | None = None,
        receipt: bool = True,
    ) -> FileView:
        """Make a finished upload durable and known. On any error nothing remains."""
        return self.commit_many(
            [(spool, name)],
            connection_id=connection_id,
            source=source,
            actor=actor,
            address=address,
            on_record=on_record,
            receipt=receipt,
        )[0]

    def commit_many(
        self,
        uploads: Sequence[tuple[Spool, str]],
        *,
        connection_id: int,
        source: str,
        actor: Actor,
        address: str = "",
        on_record: OnRecord | None = None,
        receipt: bool = True,
    ) -> list[FileView]:
        """Several finished uploads (one email's attachments): all of them, or none.

        `on_record` joins the commit's transaction; `receipt=False` leaves the receipt to
        the caller (a pull writes it to the partner's result folder, not a hosted one)."""
        for _, name in uploads:
            names.check_upload_name(name)
        stored: list[tuple[str, str, int, str, str]] = []  # key, trace id, size, sha256, name
        try:
            with self._sessions() as session:
                connection = session.get(Connection, connection_id)
                if connection is None:
                    raise NotFound(f"connection {connection_id} not found")
                account_id, folder = connection.account_id, connection.name
            for spool, name in uploads:
                size, sha256 = spool.finish()
                trace_id = str(uuid.uuid4())
                key = inbox_key(connection_id, trace_id)
                self._storage.put_file(key, spool.path)
                stored.append((key, trace_id, size, sha256, name))
        except BaseException:
            for spool, _ in uploads:
                spool.discard()
            for key, *_ in stored:
                self._storage.delete(key)
            raise
        try:
            views = self._record(
                stored,
                connection_id=connection_id,
                account_id=account_id,
                source=source,
                actor=actor,
                address=address,
                on_record=on_record,
            )
        except BaseException:
            for key, *_ in stored:
                self._storage.delete(key)
            raise
        for view in views:
            if receipt:
                self._write_receipt(view, folder)
            if self._notify is not None:
                try:
                    self._notify(view.id)
                except Exception:  # the row is the durable job; the sweeper picks it up
                    log.warning("could not enqueue file %s; it stays received", view.trace_id)
        return views

    def _record(
        self,
        stored: Sequence[tuple[str, str, int, str, str]],
        *,
        connection_id: int,
        account_id: int,
        source: str,
        actor: Actor,
        address: str,
        on_record: OnRecord | None = None,
    ) -> list[FileView]:
        with transaction(self._sessions) as session:
            now = utcnow()
            rows = []
            for key, trace_id, size, sha256, name in stored:
                row = File(
                    trace_id=trace_id,
                    account_id=account_id,
                    connection_id=connection_id,
                    direction="inbound",
                    name=name,
                    size=size,
                    sha256=sha256,
                    storage_key=key,
                    source=source,
                    source_address=address[:100],
                    state="received",
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                session.add(
                    FileEvent(
                        file_id=row.id,
                        at=now,
                        state="received",
                        reason=f"received over {source}",
                        detail={"size": size, "sha256": sha256},
                    )
                )
                audit.record(
                    session,
                    actor=actor,
                    action="file.upload",
                    target=f"file:{row.id}",
                    account_id=account_id,
                    detail={"name": name, "size": size, "protocol": source, "address": address},
                )
                rows.append(row)
            connection_row = session.get(Connection, connection_id)
            if connection_row is not None:
                connection_row.last_active_at = now
            views = [_view(r) for r in rows]
            if on_record is not None:
                on_record(session, views)
            return views

    def _write_receipt(self, view: FileView, connection_name: str) -> None:
        # A receipt can be written again from the file's row: atomic, but not fsynced, so
        # the commit pays for the stored file and the row only.
        self._storage.put_bytes(
            f"{folder_prefix(view.connection_id)}/{names.receipt_name(view.name)}",
            receipt_text(view, connection_name),
            durable=False,
        )

    # -- a connection's hosted folder ---------------------------------------------------

    def list_folder(self, connection_id: int) -> Iterator[ObjectInfo]:
        return self._storage.list(folder_prefix(connection_id))

    def stat_folder_file(self, connection_id: int, name: str) -> ObjectInfo | None:
        return self._storage.stat(f"{folder_prefix(connection_id)}/{name}")

    def open_folder_file(self, connection_id: int, name: str) -> BinaryIO:
        return self._storage.open(f"{folder_prefix(connection_id)}/{name}")

    def put_folder_file(self, connection_id: int, name: str, data: bytes) -> None:
        self._storage.put_bytes(f"{folder_prefix(connection_id)}/{name}", data)

    def move_into_folder(self, connection_id: int, name: str, path: Path) -> None:
        """Move a finished local file (a result) into the connection's folder."""
        self._storage.put_file(f"{folder_prefix(connection_id)}/{name}", path)

    def delete_folder_file(self, connection_id: int, name: str) -> bool:
        return self._storage.delete(f"{folder_prefix(connection_id)}/{name}")

    def open_stored(self, file_id: int) -> BinaryIO:
        with self._sessions() as session:
            row = session.get(File, file_id)
            if row is None:
                raise NotFound(f"file {file_id} not found")
            key = row.storage_key
        return self._storage.open(key)

    # -- history ------------------------------------------------------------------------

    def record(self, session: Session, row: File, *, state: str, reason: str) -> None:
        """Change a file's state in the caller's transaction, with its history event."""
        now = utcnow()
        row.state = state
        row.updated_at = now
        session.add(FileEvent(file_id=row.id, at=now, state=state, reason=reason))

    def list_files(self, actor: Actor, *, connection_id: int, limit: int = 200) -> list[FileView]:
        with self._sessions() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                raise NotFound(f"connection {connection_id} not found")
            actor.require_account(connection.account_id, what=f"connection {connection_id}")
            rows = session.scalars(
                select(File)
                .where(File.connection_id == connection_id)
                .order_by(File.id.desc())
                .limit(limit)
            )
            return [_view(r) for r in rows]

    def get(self, actor: Actor, file_id: int) -> tuple[FileView, list[EventView]]:
        with self._sessions() as session:
            row = session.get(File, file_id)
            if row is None:
                raise NotFound(f"file {file_id} not found")
            actor.require_account(row.account_id, what=f"file {file_id}")
            events = session.scalars(
                select(FileEvent).where(FileEvent.file_id == file_id).order_by(FileEvent.id)
            )
            return _view(row), [EventView(e.at, e.state, e.reason) for e in events]


def receipt_text(view: FileView, connection_name: str) -> bytes:
    """The content of `receipt_<name>.txt` (formats/results.md)."""
    return (
        f"traceId: {view.trace_id}\n"
        f"fileName: {view.name}\n"
        f"size: {view.size}\n"
        f"sha256: {view.sha256}\n"
        f"receivedAt: {view.created_at.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        f"connection: {connection_name}\n"
    ).encode()


def _view(row: File) -> FileView:
    return FileView(
        id=row.id,
        trace_id=row.trace_id,
        account_id=row.account_id,
        connection_id=row.connection_id,
        direction=row.direction,
        name=row.name,
        size=row.size,
        sha256=row.sha256,
        source=row.source,
        state=row.state,
        attempts=row.attempts,
        total_rows=row.total_rows,
        ok_rows=row.ok_rows,
        error_rows=row.error_rows,
        summary=row.summary,
        last_error=row.last_error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )
