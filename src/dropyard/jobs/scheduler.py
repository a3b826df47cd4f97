"""The scheduler: which scheduled connections are due, claimed once however many run.

Every active connection with a schedule (outbound `hosted` and `deliver`, inbound `pull`)
is due at the most recent time its cron expression names, read in the connection's time
zone, that is not in the future. Only that latest time counts, so a scheduler that was
down for a day fires each connection once, not once per missed tick; and times before the
connection existed never fire.

Cron expressions are read on the wall clock, then placed on the time line with
`local_to_utc`: a daily 02:00 run fires once on the night clocks go back (at the first
02:00) and, on the night they skip 02:00, at the moment they jump. The price: an hourly
schedule runs once, not twice, for the hour that repeats.

A claim is an INSERT into `scheduled_runs`, unique on (connection, due time): a second
scheduler's insert of the same run fails on the constraint and it moves on. The claimed
runs are returned for the caller to enqueue; whoever runs one reports with `finish_run`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from dropyard.connections.details import cron_for
from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Invalid
from dropyard.files.models import ScheduledRun
from dropyard.outbound.ranges import local_to_utc

log = logging.getLogger(__name__)

SCHEDULED_METHODOLOGIES = ("hosted", "deliver", "pull")
RunState = Literal["queued", "done", "empty", "skipped", "failed"]
RUN_STATES: tuple[RunState, ...] = ("queued", "done", "empty", "skipped", "failed")
Claim = tuple[int, datetime, str]
_MAX_STEPS = 10_000


def latest_due(cron: str, tz: ZoneInfo, now: datetime) -> datetime | None:
    """The most recent time at or before `now` (UTC) that `cron` names in `tz`."""
    wall_now = now.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    times = croniter(cron, wall_now + timedelta(minutes=1))  # get_prev is strict
    for _ in range(_MAX_STEPS):
        due = local_to_utc(times.get_prev(datetime), tz)
        if due <= now:
            return due
    return None


class Scheduler:
    """Finds due connections and claims their runs. Safe to run on several nodes."""

    def __init__(self, sessions: SessionFactory, clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def tick(self, now: datetime | None = None) -> list[Claim]:
        """Claim every run due at `now`: (connection id, due time, run id) of each claim
        this scheduler won."""
        now = now or self._clock()
        claims: list[Claim] = []
        for connection_id, due_at in self.due(now):
            run_id = self.claim(connection_id, due_at, now=now)
            if run_id is not None:
                claims.append((connection_id, due_at, run_id))
        return claims

    def due(self, now: datetime) -> list[tuple[int, datetime]]:
        """Connections whose latest due time has no claimed run yet."""
        found: list[tuple[int, datetime]] = []
        with self._sessions() as session:
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            connections = session.execute(
                select(Connection.id, Connection.details, Connection.created_at)
                .where(
                    Connection.status == "active",
                    Connection.methodology.in_(SCHEDULED_METHODOLOGIES),
                )
                .order_by(Connection.id)
            ).all()
            for connection_id, details, created_at in connections:
                due_at = self._due_of(connection_id, details or {}, now)
                if due_at is None or due_at < created_at:
                    continue
                last = session.scalar(
                    select(func.max(ScheduledRun.due_at)).where(
                        ScheduledRun.connection_id == connection_id
                    )
                )
                # An earlier time than one already claimed (the schedule was edited) waits.
                if last is None or due_at > last:
                    found.append((connection_id, due_at))
        return found

    @staticmethod
    def _due_of(connection_id: int, details: dict[str, object], now: datetime) -> datetime | None:
        schedule = details.get("schedule")
        if not isinstance(schedule, str) or not schedule:
            return None
        zone = details.get("timezone") or "UTC"
        try:
            return latest_due(cron_for(schedule), ZoneInfo(str(zone)), now)
        except (Invalid, ZoneInfoNotFoundError, ValueError, KeyError) as exc:
            log.warning(
                "connection %s: schedule %r in %r is unusable: %s",
                connection_id,
                schedule,
                zone,
                exc,
            )
            return None

    def claim(self, connection_id: int, due_at: datetime, *, now: datetime) -> str | None:
        """Claim one run: its run id, or None when another scheduler claimed it first."""
        run_id = str(uuid.uuid4())
        # Its own session and transaction, so a lost race costs only this claim.
        with self._sessions() as session:
            try:
                with session.begin():
                    session.add(
                        ScheduledRun(
                            connection_id=connection_id,
                            due_at=due_at,
                            run_id=run_id,
                            state="queued",
                            reason=f"due at {due_at:%Y-%m-%d %H:%M} UTC",
                            created_at=now,
                        )
                    )
            except IntegrityError:
                log.debug("connection %s run due %s was claimed elsewhere", connection_id, due_at)
                return None
        return run_id

    def finish_run(self, run_id: str, state: RunState, reason: str) -> bool:
        """Record how a claimed run ended. False when no run has that id."""
        if state not in RUN_STATES:
            raise Invalid(f"state '{state}' is not one of {', '.join(RUN_STATES)}", field="state")
        with transaction(self._sessions) as session:
            result = session.execute(
                update(ScheduledRun)
                .where(ScheduledRun.run_id == run_id)
                .values(state=state, reason=reason, finished_at=self._clock())
            )
            return bool(getattr(result, "rowcount", 0))
