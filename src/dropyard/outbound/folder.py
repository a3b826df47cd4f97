"""The life of outbound files in a hosted folder, after they are stored there.

`available` (the partner's client sees it) → `downloaded` (read whole at least once) →
`expired` (retention over, replaced by a newer file of the same name, or deleted by the
partner). Every change is a FileEvent; a file row is locked while it changes, so a
download and an expiry at the same moment do not both win.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import NotFound
from dropyard.files.models import File
from dropyard.files.service import FileService

IN_FOLDER = ("available", "downloaded")


class HostedFolder:
    """State changes of outbound files in hosted folders."""

    def __init__(
        self,
        sessions: SessionFactory,
        files: FileService,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._files = files
        self._clock = clock

    def publish(
        self, connection_id: int, file_id: int, *, folder: str, expires_at: datetime, now: datetime
    ) -> None:
        """A stored file is `available` until `expires_at`; an older file of the same name,
        which it just replaced in the folder, is `expired`."""
        with transaction(self._sessions) as session:
            row = session.get(File, file_id)
            if row is None:
                raise NotFound(f"file {file_id} not found")
            older = session.scalars(
                select(File).where(
                    File.connection_id == connection_id,
                    File.direction == "outbound",
                    File.name == row.name,
                    File.id != file_id,
                    File.state.in_(IN_FOLDER),
                )
            ).all()
            for replaced in older:
                replaced.finished_at = now
                self._files.record(
                    session,
                    replaced,
                    state="expired",
                    reason=f"replaced in the folder by a newer file of the same name ({file_id})",
                )
            row.expires_at = expires_at
            self._files.record(
                session,
                row,
                state="available",
                reason=f"in folder '{folder}' until {expires_at:%Y-%m-%d %H:%M} UTC",
            )
            connection = session.get(Connection, connection_id)
            if connection is not None:
                connection.last_active_at = now

    def expire(self, now: datetime) -> int:
        """Remove files past their retention from their folders. Returns how many."""
        with self._sessions() as session:
            due = session.scalars(
                select(File.id).where(
                    File.direction == "outbound",
                    File.state.in_(IN_FOLDER),
                    File.expires_at.is_not(None),
                    File.expires_at <= now,
                )
            ).all()
        count = 0
        for file_id in due:
            with transaction(self._sessions) as session:
                row = session.get(File, file_id, with_for_update=True)
                if row is None or row.state not in IN_FOLDER:
                    continue
                newer = session.scalar(
                    select(File.id).where(
                        File.connection_id == row.connection_id,
                        File.name == row.name,
                        File.direction == "outbound",
                        File.id > row.id,
                        File.state.in_(("generated", *IN_FOLDER)),
                    )
                )
                if newer is None:  # the folder's file of that name is still this one
                    self._files.delete_folder_file(row.connection_id, row.name)
                days = (row.expires_at - row.created_at).days if row.expires_at else 0
                row.finished_at = now
                self._files.record(
                    session,
                    row,
                    state="expired",
                    reason=f"removed from the folder after {days} days (retention)",
                )
                count += 1
        return count

    def mark_downloaded(self, connection_id: int, name: str) -> bool:
        """A client read a whole file (the gateway's on_download): the newest `available`
        file of that name becomes `downloaded`. False when there is none."""
        with transaction(self._sessions) as session:
            row = self._newest(session, connection_id, name, ("available",))
            if row is None:
                return False
            self._files.record(session, row, state="downloaded", reason="downloaded by the partner")
            return True

    def removed_by_partner(self, connection_id: int, name: str) -> bool:
        """The partner deleted a file it has taken: gone before its retention ran out, so
        it is `expired` now. False when no file of that name was in the folder."""
        with transaction(self._sessions) as session:
            row = self._newest(session, connection_id, name, IN_FOLDER)
            if row is None:
                return False
            row.finished_at = self._clock()
            self._files.record(
                session, row, state="expired", reason="deleted from the folder by the partner"
            )
            return True

    @staticmethod
    def _newest(
        session: Session, connection_id: int, name: str, states: tuple[str, ...]
    ) -> File | None:
        return session.scalar(
            select(File)
            .where(
                File.connection_id == connection_id,
                File.direction == "outbound",
                File.name == name,
                File.state.in_(states),
            )
            .order_by(File.id.desc())
            .limit(1)
            .with_for_update()
        )
