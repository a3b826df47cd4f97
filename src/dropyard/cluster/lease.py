"""A named lease in the database: held by one node at a time until it expires.

Taking and renewing are one UPDATE (`WHERE expired OR held by me`), and an INSERT that
does nothing when the row exists, in one transaction: on SQLite the transaction holds
the write lock, on PostgreSQL the second of two racing UPDATEs waits for the first and
then finds the lease taken. Times are the nodes' clocks (keep them in sync, as NTP does):
a lease of 45 s renewed every 10 s tolerates half a minute of drift.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from dropyard.cluster.models import Lease as LeaseRow
from dropyard.cluster.sql import insert_if_missing
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Invalid


def node_name() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is new)."""
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """One named lease, seen from one would-be holder."""

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        name: str,
        holder: str,
        seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if seconds <= 0:
            raise Invalid(f"a lease must last more than 0 seconds, not {seconds}", field="seconds")
        self._sessions = sessions
        self.name = name
        self.holder = holder
        self._length = timedelta(seconds=seconds)
        self._clock = clock

    def take(self) -> bool:
        """Take the lease, or renew it when held already. True when held now."""
        now = self._clock()
        until = now + self._length
        with transaction(self._sessions) as session:
            renewed = session.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.name == self.name,
                    or_(LeaseRow.expires_at < now, LeaseRow.holder == self.holder),
                )
                .values(holder=self.holder, expires_at=until)
                .returning(LeaseRow.name)
            )
            if renewed.first() is not None:
                return True
            return insert_if_missing(
                session, LeaseRow, name=self.name, holder=self.holder, expires_at=until
            )

    def release(self) -> None:
        """Let the lease go now, if this holder has it: the next taker need not wait."""
        with transaction(self._sessions) as session:
            session.execute(
                update(LeaseRow)
                .where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
                .values(expires_at=self._clock() - timedelta(seconds=1))
            )

    def current_holder(self) -> str | None:
        """Who holds the lease now (None when nobody does)."""
        with self._sessions() as session:
            row = session.execute(
                select(LeaseRow.holder, LeaseRow.expires_at).where(LeaseRow.name == self.name)
            ).first()
        if row is None or row.expires_at < self._clock():
            return None
        return str(row.holder)
