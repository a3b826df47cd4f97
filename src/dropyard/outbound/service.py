"""Outbound runs and the life of what they make: generate, store, expire, downloaded.

A run reads the connection, works out its window, streams the generator's rows into a
temporary file and stores it:
- `hosted`: into the connection's folder, where the partner's SFTP/FTP client sees it;
  the file goes `generated` → `available` and stays `retention_days`, then `expired`.
  A newer file of the same name replaces it in the folder (the older one is `expired`).
- `deliver`: under `outbound/<connection>/<trace id>`, left `generated` for delivery.

Every state change is a FileEvent. A run that makes no file (no rows and `send_empty`
off, or its connection paused since the run was queued) says so on its ScheduledRun.
A run id makes at most one file: running it again returns that file.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dropyard.accounts.actors import SYSTEM
from dropyard.accounts.models import Account
from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Conflict, DropyardError, Invalid, NotFound
from dropyard.files.models import File, FileEvent, ScheduledRun
from dropyard.files.service import FileService, FileView, folder_prefix
from dropyard.logs import log_context
from dropyard.outbound.bonus import BonusDetail
from dropyard.outbound.folder import HostedFolder
from dropyard.outbound.generators import ActionExport, Generator, PerformanceByDay, Request, Viewer
from dropyard.outbound.naming import placeholders, render_name
from dropyard.outbound.ranges import BACKFILL, Window, backfill, window_for
from dropyard.outbound.writer import Compression, FileFormat, TableWriter, Written
from dropyard.storage.base import Storage

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 30


@dataclass(frozen=True)
class RunResult:
    """What one run did: its window, how many rows, and the file (None: no file)."""

    run_id: str
    connection_id: int
    range_name: str
    range_start: datetime
    range_end: datetime
    rows: int
    file: FileView | None
    expires_at: datetime | None
    reason: str


@dataclass(frozen=True)
class _Plan:
    connection_id: int
    account_id: int
    connection_name: str
    folder: str
    account_name: str
    data_type: str
    methodology: str
    status: str
    details: dict[str, Any]
    tz: ZoneInfo
    window: Window
    viewer: Viewer


def generator_for(
    data_type: str, details: Mapping[str, Any], *, sessions: SessionFactory
) -> Generator:
    """The generator of an outbound data type (a report names its own)."""
    if data_type == "reports":
        report = details.get("report") or "performance_by_day"
        if report == "performance_by_day":
            return PerformanceByDay()
        if report == "action_listing":
            return ActionExport("action_listing")
        raise Invalid(f"report '{report}' is not one of performance_by_day, action_listing")
    if data_type == "conversions":
        return ActionExport("conversions")
    if data_type == "performance_bonus_detail":
        return BonusDetail(sessions)
    raise Invalid(f"data type '{data_type}' has no outbound file", field="data_type")


class OutboundService:
    """Makes outbound files and keeps their history, folder and retention."""

    def __init__(
        self,
        sessions: SessionFactory,
        files: FileService,
        storage: Storage,
        *,
        work_dir: Path,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._files = files
        self._storage = storage
        self._work_dir = work_dir
        self._clock = clock
        self.folder = HostedFolder(sessions, files, clock=clock)

    # -- runs ---------------------------------------------------------------------------

    def run(
        self,
        connection_id: int,
        *,
        run_id: str | None = None,
        at: datetime | None = None,
        range_from: date | datetime | None = None,
        range_to: date | datetime | None = None,
    ) -> RunResult:
        """Make the connection's file for the run time `at` (default: now), or for an
        explicit past range (`range_from`/`range_to`: a backfill)."""
        at = at or self._clock()
        if at.tzinfo is None:
            raise Invalid(f"at '{at}' has no time zone", field="at")
        run_id = run_id or str(uuid.uuid4())
        with log_context(run_id=run_id):
            try:
                result = self._run(connection_id, run_id, at, range_from, range_to)
            except Exception as exc:
                message = exc.message if isinstance(exc, DropyardError) else str(exc)
                self._finish_scheduled(run_id, "failed", f"failed: {message}")
                log.warning(
                    "outbound run %s of connection %s failed: %s", run_id, connection_id, exc
                )
                raise
            log.info("outbound run %s of connection %s: %s", run_id, connection_id, result.reason)
            return result

    def _run(
        self,
        connection_id: int,
        run_id: str,
        at: datetime,
        range_from: date | datetime | None,
        range_to: date | datetime | None,
    ) -> RunResult:
        with self._sessions() as session:
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            done = session.scalar(
                select(File).where(File.run_id == run_id, File.connection_id == connection_id)
            )
            scheduled = session.scalar(select(ScheduledRun).where(ScheduledRun.run_id == run_id))
            plan = None if done else self._plan(session, connection_id, at, range_from, range_to)
        if done is not None:
            made = Window(
                str((done.summary or {}).get("range", "")),
                done.range_start or done.created_at,
                done.range_end or done.created_at,
            )
            rows = done.total_rows or 0
            return self._result(run_id, connection_id, made, rows, done.id, "made by this run")
        assert plan is not None
        window = plan.window
        if scheduled is not None and plan.status != "active":
            reason = f"not run: the connection is {plan.status}"
            self._finish_scheduled(run_id, "skipped", reason)
            return self._result(run_id, connection_id, window, 0, None, reason)
        generator = generator_for(plan.data_type, plan.details, sessions=self._sessions)
        fmt, compression = _format_of(plan.details)
        name = render_name(
            plan.details.get("name_template"),
            placeholders(
                connection=plan.connection_name,
                data_type=plan.data_type,
                account=plan.account_name,
                run_id=run_id,
                at=at,
                tz=plan.tz,
                fmt=fmt,
                compression=compression,
            ),
        )
        request = Request(viewer=plan.viewer, window=window, tz=plan.tz, at=at)
        written = self._write(generator, request, fmt=fmt, compression=compression)
        if written.rows == 0 and not plan.details.get("send_empty", True):
            written.path.unlink(missing_ok=True)
            reason = (
                f"no file: {_describe(window)} has no rows and the connection does not "
                "send empty files"
            )
            self._finish_scheduled(run_id, "empty", reason)
            return self._result(run_id, connection_id, window, 0, None, reason)
        file_id = self._store(plan, written, name=name, run_id=run_id, report=generator.name)
        reason = f"made {name}: {written.rows} rows for {_describe(window)}"
        self._finish_scheduled(run_id, "done", reason)
        return self._result(run_id, connection_id, window, written.rows, file_id, reason)

    def _plan(
        self,
        session: Session,
        connection_id: int,
        at: datetime,
        range_from: date | datetime | None,
        range_to: date | datetime | None,
    ) -> _Plan:
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise NotFound(f"connection {connection_id} not found")
        if connection.direction != "outbound":
            raise Invalid(f"connection '{connection.name}' is inbound: it makes no files")
        if connection.status == "archived":
            raise Conflict(f"connection '{connection.name}' is archived")
        account = session.get(Account, connection.account_id)
        if account is None:
            raise NotFound(f"account {connection.account_id} not found")
        details = dict(connection.details)
        tz = ZoneInfo(str(details.get("timezone") or "UTC"))
        if (range_from is None) != (range_to is None):
            raise Invalid("a backfill needs both range_from and range_to", field="range_from")
        if range_from is not None and range_to is not None:
            window = backfill(range_from, range_to, tz=tz)
        else:
            name = str(details.get("range") or "yesterday")
            last_end = (
                self._last_end(session, connection_id, at) if name == "since_last_run" else None
            )
            window = window_for(
                name, at=at, tz=tz, last_end=last_end, created_at=connection.created_at
            )
        return _Plan(
            connection_id=connection.id,
            account_id=account.id,
            connection_name=connection.name,
            folder=connection.folder,
            account_name=account.name,
            data_type=connection.data_type,
            methodology=connection.methodology,
            status=connection.status,
            details=details,
            tz=tz,
            window=window,
            viewer=Viewer(account_id=account.id, kind=account.kind),
        )

    @staticmethod
    def _last_end(session: Session, connection_id: int, at: datetime) -> datetime | None:
        """Where the previous file of a delta feed ended (backfills and failures aside)."""
        files = session.execute(
            select(File.range_end, File.summary)
            .where(
                File.connection_id == connection_id,
                File.direction == "outbound",
                File.state != "failed",
                File.range_end.is_not(None),
                File.range_end <= at,
            )
            .order_by(File.range_end.desc(), File.id.desc())
            .execution_options(yield_per=50)
        )
        for range_end, summary in files:
            if (summary or {}).get("range") != BACKFILL:
                end: datetime | None = range_end
                return end
        return None

    def _write(
        self,
        generator: Generator,
        request: Request,
        *,
        fmt: FileFormat,
        compression: Compression,
    ) -> Written:
        with self._sessions() as session:
            # A long read must not hold SQLite's write lock (IMMEDIATE is the default).
            session.connection(execution_options={"sqlite_begin": "DEFERRED"})
            with TableWriter(
                self._work_dir,
                generator.columns,
                fmt=fmt,
                compression=compression,
                tz=request.tz,
                sheet=generator.name,
            ) as writer:
                for row in generator.rows(session, request):
                    writer.write(row)
                return writer.finish()

    def _store(self, plan: _Plan, written: Written, *, name: str, run_id: str, report: str) -> int:
        hosted = plan.methodology == "hosted"
        trace_id = str(uuid.uuid4())
        key = (
            f"{folder_prefix(plan.connection_id)}/{name}"
            if hosted
            else f"outbound/{plan.connection_id}/{trace_id}"
        )
        window = plan.window
        now = self._clock()
        try:
            with transaction(self._sessions) as session:
                row = File(
                    trace_id=trace_id,
                    account_id=plan.account_id,
                    connection_id=plan.connection_id,
                    direction="outbound",
                    name=name,
                    size=written.size,
                    sha256=written.sha256,
                    storage_key=key,
                    source="generated",
                    state="generated",
                    run_id=run_id,
                    range_start=window.start,
                    range_end=window.end,
                    total_rows=written.rows,
                    summary={"report": report, "range": window.name, "rows": written.rows},
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                file_id = row.id
                session.add(
                    FileEvent(
                        file_id=file_id,
                        at=now,
                        state="generated",
                        reason=f"generated {report}: {written.rows} rows for {_describe(window)}",
                        detail={"size": written.size, "sha256": written.sha256},
                    )
                )
        except BaseException:
            written.path.unlink(missing_ok=True)
            raise
        try:
            if hosted:
                self._files.move_into_folder(plan.connection_id, name, written.path)
            else:
                self._storage.put_file(key, written.path)
        except Exception as exc:
            written.path.unlink(missing_ok=True)
            with transaction(self._sessions) as session:
                failed = session.get(File, file_id)
                if failed is not None:
                    failed.last_error = str(exc)
                    failed.finished_at = now
                    self._files.record(session, failed, state="failed", reason=f"not stored: {exc}")
            raise
        if hosted:
            retention = int(plan.details.get("retention_days") or DEFAULT_RETENTION_DAYS)
            self.folder.publish(
                plan.connection_id,
                file_id,
                folder=plan.folder,
                expires_at=now + timedelta(days=retention),
                now=now,
            )
        return file_id

    def _result(
        self,
        run_id: str,
        connection_id: int,
        window: Window,
        rows: int,
        file_id: int | None,
        reason: str,
    ) -> RunResult:
        view: FileView | None = None
        expires: datetime | None = None
        if file_id is not None:
            view, _ = self._files.get(SYSTEM, file_id)
            with self._sessions() as session:
                expires = session.scalar(select(File.expires_at).where(File.id == file_id))
        return RunResult(
            run_id=run_id,
            connection_id=connection_id,
            range_name=window.name,
            range_start=window.start,
            range_end=window.end,
            rows=rows,
            file=view,
            expires_at=expires,
            reason=reason,
        )

    def _finish_scheduled(self, run_id: str, state: str, reason: str) -> None:
        with transaction(self._sessions) as session:
            session.execute(
                update(ScheduledRun)
                .where(ScheduledRun.run_id == run_id)
                .values(state=state, reason=reason, finished_at=self._clock())
            )

    # -- the hosted folder --------------------------------------------------------------

    def expire(self, now: datetime | None = None) -> int:
        """Remove files past their retention from their folders. Returns how many."""
        return self.folder.expire(now or self._clock())

    def mark_downloaded(self, connection_id: int, name: str) -> bool:
        """The gateway's on_download hook for hosted outbound folders."""
        return self.folder.mark_downloaded(connection_id, name)

    def removed_by_partner(self, connection_id: int, name: str) -> bool:
        """To call when the partner deletes a file from a hosted outbound folder."""
        return self.folder.removed_by_partner(connection_id, name)


_FORMATS: dict[str, FileFormat] = {"csv": "csv", "tsv": "tsv", "pipe": "pipe", "xlsx": "xlsx"}
_COMPRESSIONS: dict[str, Compression] = {"none": "none", "gzip": "gzip"}


def _format_of(details: Mapping[str, Any]) -> tuple[FileFormat, Compression]:
    fmt = _FORMATS.get(str(details.get("format") or "csv"))
    compression = _COMPRESSIONS.get(str(details.get("compression") or "none"))
    if fmt is None:
        raise Invalid(f"format '{details.get('format')}' is not one of {', '.join(_FORMATS)}")
    if compression is None:
        raise Invalid(f"compression '{details.get('compression')}' is not none or gzip")
    return fmt, compression


def _describe(window: Window) -> str:
    start = window.start.astimezone(UTC)
    end = window.end.astimezone(UTC)
    return f"{window.name} {start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M} UTC"
