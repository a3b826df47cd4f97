"""Processing an inbound file, exactly once.

1. Claim: `received` → `processing` with a token and a lease (a dead worker's lease runs
   out and the sweeper hands the file back).
2. Import: parse and validate by data type, and import the good rows — in ONE transaction
   that ends by moving the file to its final state, and only if the claim is still ours.
   A crash before the commit leaves the file untouched; after, fully done.
3. Answer: summary and error file on the file's channel.

A dry run (`Processor.dry_run`) goes through the same parse, validation and import loop
for a sample file, in a transaction that is always rolled back: it tells what an import
would say, row by row, and leaves no trace.

Transient errors (database busy, storage unreachable) give the claim back with a backoff;
after `max_attempts` the file is `dead` until someone retries it by hand. Anything else
wrong with the file fails it at once with a reason a person can act on.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dropyard.accounts.models import Account
from dropyard.connections.models import Connection
from dropyard.datatypes.base import DataType, ImportContext
from dropyard.datatypes.readers import FileRejected, Limits, open_table
from dropyard.datatypes.schema import ParseContext, RowError, ValidRow
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Invalid, NotFound, Transient
from dropyard.files.models import File, FileEvent
from dropyard.files.results import ErrorFile, ResultChannel, Summary
from dropyard.logs import log_context
from dropyard.storage.base import Storage

log = logging.getLogger(__name__)

FINAL_INBOUND = frozenset({"processed", "partial", "failed", "duplicate"})
# The placeholder `files` row of a dry run says where it came from (never committed).
DRY_RUN_SOURCE = "dry_run"
_HASH_CHUNK = 1024 * 1024


class RowSink(Protocol):
    """Where the rejected rows of an import go: the error file, or a dry run's list."""

    rows: int

    def add(
        self, line: int, fields: Sequence[str] | None, raw: str, code: str, message: str
    ) -> None: ...

    def close(self) -> None: ...

    def discard(self) -> None: ...


_S = TypeVar("_S", bound=RowSink)


@dataclass(frozen=True)
class RowErrorView:
    """One error of one row, as a person reads it."""

    line: int
    code: str
    message: str


@dataclass(frozen=True)
class DryRun:
    """What importing a sample file would say, with nothing imported.

    `state` is the state a real import would end in; `errors` holds the first errors
    (see `more_errors` for how many were left out)."""

    state: str
    total_rows: int
    ok_rows: int
    error_rows: int
    file_errors: tuple[tuple[str, str], ...]
    errors: tuple[RowErrorView, ...]
    more_errors: int = 0


class _ErrorList:
    """A dry run's row errors: the first `keep` in memory, the rest only counted."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.found: list[RowErrorView] = []
        self.rows = 0

    def add(
        self, line: int, fields: Sequence[str] | None, raw: str, code: str, message: str
    ) -> None:
        self.rows += 1
        if len(self.found) < self.keep:
            self.found.append(RowErrorView(line, code, message))

    def close(self) -> None:
        return None

    def discard(self) -> None:
        # A file refused half-way still shows the row errors found before: they help.
        return None


@dataclass(frozen=True)
class Claim:
    file_id: int
    token: str
    attempt: int
    trace_id: str = ""


def backoff(attempt: int, *, base: float = 5.0, cap: float = 600.0) -> timedelta:
    """Capped exponential backoff with full jitter."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311


class Processor:
    def __init__(
        self,
        sessions: SessionFactory,
        storage: Storage,
        *,
        data_types: Mapping[str, DataType],
        channel: ResultChannel,
        work_dir: Path,
        limits: Limits,
        lease: timedelta = timedelta(minutes=10),
        max_attempts: int = 5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = self._sessions = sessions
        self._storage = storage
        self._types = data_types
        self._channel = channel
        self._work_dir = work_dir
        self._limits = limits
        self._lease = lease
        self._max_attempts = max_attempts
        self._clock = clock

    # -- claims -------------------------------------------------------------------------

    def claim(self, file_id: int) -> Claim | None:
        now = self._clock()
        token = str(uuid.uuid4())
        with transaction(self._sessions) as session:
            row = session.get(File, file_id)
            if row is None or row.direction != "inbound" or row.state != "received":
                return None
            if row.not_before is not None and row.not_before > now:
                return None
            attempt, trace_id = row.attempts + 1, row.trace_id
            done = session.execute(
                update(File)
                .where(File.id == file_id, File.state == "received")
                .values(
                    state="processing",
                    claim_token=token,
                    lease_until=now + self._lease,
                    attempts=File.attempts + 1,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            session.add(
                FileEvent(
                    file_id=file_id,
                    at=now,
                    state="processing",
                    reason=f"attempt {attempt}",
                )
            )
            return Claim(file_id, token, attempt, trace_id)

    def due(self, *, limit: int = 500) -> list[int]:
        """Files to (re)enqueue: received and due, or processing with an expired lease."""
        now = self._clock()
        with transaction(self._sessions) as session:
            expired = session.scalars(
                select(File).where(File.state == "processing", File.lease_until < now).limit(limit)
            ).all()
            for row in expired:
                row.state, row.claim_token, row.lease_until = "received", None, None
                session.add(
                    FileEvent(
                        file_id=row.id,
                        at=now,
                        state="received",
                        reason="the worker stopped; processing again",
                    )
                )
            ready = session.scalars(
                select(File.id)
                .where(
                    File.state == "received",
                    File.direction == "inbound",
                    (File.not_before.is_(None)) | (File.not_before <= now),
                )
                .order_by(File.id)
                .limit(limit)
            ).all()
            return list(ready)

    def retry_delay(self, file_id: int) -> float | None:
        """Seconds until a given-back file is due again, or None."""
        with self._sessions() as session:
            row = session.get(File, file_id)
            if row is None or row.state != "received" or row.not_before is None:
                return None
            return max((row.not_before - self._clock()).total_seconds(), 0.0)

    def retry(self, file_id: int) -> None:
        """By hand: a dead or failed file goes back to `received` with fresh attempts."""
        now = self._clock()
        with transaction(self._sessions) as session:
            row = session.get(File, file_id)
            if row is None or row.direction != "inbound":
                raise NotFound(f"file {file_id} not found")
            if row.state not in ("dead", "failed"):
                raise Transient(
                    f"file {file_id} is {row.state}; only dead or failed files are retried"
                )
            row.state, row.attempts, row.not_before = "received", 0, None
            row.claim_token = row.lease_until = None
            session.add(
                FileEvent(file_id=row.id, at=now, state="received", reason="retried by hand")
            )

    # -- the run ------------------------------------------------------------------------

    def process(self, file_id: int) -> str | None:
        """Process one file if it can be claimed. Returns its state afterwards."""
        claim = self.claim(file_id)
        if claim is None:
            return None
        with log_context(trace_id=claim.trace_id):
            state = self._process_claimed(claim)
            log.info("file %s: %s after attempt %d", file_id, state, claim.attempt)
            return state

    def _process_claimed(self, claim: Claim) -> str:
        file_id = claim.file_id
        heartbeat = _Heartbeat(self, claim)
        heartbeat.start()
        try:
            return self._run(claim)
        except (Transient, OperationalError, OSError) as exc:
            return self._give_back(claim, exc)
        except Exception as exc:
            log.exception("file %s: unexpected error while processing", file_id)
            return self._give_back(claim, exc)
        finally:
            heartbeat.stop()

    def renew(self, claim: Claim) -> None:
        """Keep the claim while the work goes on (a live worker's lease never runs out)."""
        with transaction(self._sessions) as session:
            session.execute(
                update(File)
                .where(File.id == claim.file_id, File.claim_token == claim.token)
                .values(lease_until=self._clock() + self._lease)
            )

    @property
    def lease(self) -> timedelta:
        return self._lease

    def _give_back(self, claim: Claim, exc: BaseException) -> str:
        now = self._clock()
        reason = getattr(exc, "message", None) or "internal error"
        with transaction(self._sessions) as session:
            row = session.get(File, claim.file_id)
            if row is None or row.claim_token != claim.token:
                return row.state if row else "missing"
            row.claim_token = row.lease_until = None
            row.last_error = str(reason)[:2000]
            if claim.attempt >= self._max_attempts:
                row.state = "dead"
                event = f"gave up after {claim.attempt} attempts: {reason}"
            else:
                row.state = "received"
                row.not_before = now + backoff(claim.attempt)
                event = f"attempt {claim.attempt} failed, retrying: {reason}"
            row.updated_at = now
            session.add(FileEvent(file_id=row.id, at=now, state=row.state, reason=event))
            return row.state

    def _run(self, claim: Claim) -> str:
        with self._sessions() as session:
            row = session.get(File, claim.file_id)
            connection = session.get(Connection, row.connection_id) if row else None
            if row is None or connection is None:
                raise NotFound(f"file {claim.file_id} not found")
            account = session.get(Account, row.account_id)
            assert account is not None
            file_name, key, sha256 = row.name, row.storage_key, row.sha256
            received_at, trace_id = row.created_at, row.trace_id
            data_type = self._types.get(connection.data_type)
            allow_extra = bool(connection.details.get("allow_extra_columns", False))
            connection_name, connection_id = connection.name, connection.id
            tz, window = ZoneInfo(account.timezone), account.conversion_window_days

        totals = {"total": 0, "errors": 0}
        file_errors: list[tuple[str, str]] = []
        errors: ErrorFile | None = None
        state = "failed"
        try:
            with transaction(self._sessions) as session:
                session.execute(
                    select(Connection.id).where(Connection.id == connection_id).with_for_update()
                )
                if self._already_imported(session, connection_id, sha256, claim.file_id):
                    state = "duplicate"
                    file_errors.append(
                        (
                            "DUPLICATE_FILE",
                            "the same bytes were already imported "
                            "through this connection; nothing was imported again",
                        )
                    )
                elif data_type is None:
                    file_errors.append(
                        (
                            "UNSUPPORTED_FORMAT",
                            f"data type '{connection.data_type}' is not imported",
                        )
                    )
                else:
                    errors, state = self._import(
                        session,
                        lambda: self._storage.open(key),
                        lambda header: ErrorFile(self._work_dir, header),
                        data_type,
                        allow_extra,
                        file_name,
                        totals,
                        file_errors,
                        ImportContext(
                            file_id=claim.file_id,
                            account_id=account.id,
                            connection_id=connection_id,
                            timezone=tz,
                            now=self._clock(),
                            window_days=window,
                            actor=f"file:{trace_id}",
                            reject=lambda r, e: None,
                        ),
                    )
                self._finish(session, claim, state, totals, file_errors)
        except BaseException:
            if errors is not None:
                errors.discard()
            raise
        finished = self._clock()
        summary = Summary(
            trace_id=trace_id,
            file_name=file_name,
            connection=connection_name,
            data_type=connection.data_type,
            state=state,
            total_rows=totals["total"],
            ok_rows=_imported(totals),
            error_rows=totals["errors"],
            file_errors=tuple(file_errors),
            received_at=received_at,
            finished_at=finished,
        )
        self._answer(claim.file_id, connection_id, file_name, summary, errors)
        return state

    def _import(
        self,
        session: Session,
        opener: Callable[[], BinaryIO],
        sink_for: Callable[[Sequence[str]], _S],
        data_type: DataType,
        allow_extra: bool,
        file_name: str,
        totals: dict[str, int],
        file_errors: list[tuple[str, str]],
        base_ctx: ImportContext,
    ) -> tuple[_S | None, str]:
        """Parse, validate and import the rows of one file, inside `session`'s
        transaction; the rejected rows go to the sink `sink_for(header)` makes. The one loop
        of both a real import and a dry run (which rolls the transaction back)."""
        try:
            table = open_table(
                opener,
                name=file_name,
                limits=self._limits,
                allow_xlsx=data_type.allow_xlsx,
            )
            bound = data_type.schema(allow_extra=allow_extra).bind(
                table.header,
                context=ParseContext(
                    tz=base_ctx.timezone, now=base_ctx.now, max_age_days=base_ctx.window_days
                ),
            )
        except FileRejected as exc:
            file_errors.append((exc.code, exc.message))
            return None, "failed"
        errors = sink_for(table.header)
        rejected_lines: set[int] = set()

        def reject(row: ValidRow, error: RowError) -> None:
            if row.line not in rejected_lines:
                rejected_lines.add(row.line)
                totals["errors"] += 1
            errors.add(row.line, row.fields, row.raw, error.code, error.message)

        ctx = replace(base_ctx, reject=reject)
        # A savepoint: a file-level failure found late (TOO_MANY_ERRORS...) undoes the rows
        # while the file's own state change still commits.
        rows_savepoint = session.begin_nested()
        importer = data_type.importer(session, ctx)
        try:
            for raw in table.rows:
                totals["total"] += 1
                if raw.error is not None:
                    totals["errors"] += 1
                    errors.add(raw.line, raw.fields, raw.raw, raw.error.code, raw.error.message)
                    continue
                checked = bound.validate(raw)
                if isinstance(checked, list):
                    totals["errors"] += 1
                    rejected_lines.add(raw.line)
                    for error in checked:
                        errors.add(raw.line, raw.fields, raw.raw, error.code, error.message)
                    importer.rejected(raw.line, bound.texts(raw), checked[0].code)
                    continue
                importer.add(checked)
            outcome = importer.finish(total_rows=totals["total"], rejected_rows=totals["errors"])
        except FileRejected as exc:
            rows_savepoint.rollback()
            errors.discard()
            file_errors.append((exc.code, exc.message))
            return None, "failed"
        except BaseException:
            errors.discard()
            raise
        errors.close()
        if outcome.file_error is not None:
            rows_savepoint.rollback()
            file_errors.append(outcome.file_error)
            totals["imported"] = 0
            state = "failed"
        elif totals["total"] == 0:
            file_errors.append(("EMPTY_FILE", "the file has a header but no rows"))
            state = "processed"
        else:
            state = (
                "processed"
                if not totals["errors"]
                else "failed"
                if totals["errors"] >= totals["total"]
                else "partial"
            )
        if rows_savepoint.is_active:
            rows_savepoint.commit()
        if errors.rows == 0:
            errors.discard()
            return None, state
        return errors, state

    # -- dry runs -----------------------------------------------------------------------

    def dry_run(
        self, *, connection_id: int, name: str, path: Path, max_errors: int = 200
    ) -> DryRun:
        """Read, validate and import the file at `path` as if it had come through the
        inbound connection, ledger rules included, then roll everything back: no `files`
        row, nothing in the folder, nothing in the ledger. The caller checks that the
        person may see the connection."""
        with self._sessions() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                raise NotFound(f"connection {connection_id} not found")
            if connection.direction != "inbound":
                raise Invalid(f"connection '{connection.name}' is outbound: it imports no files")
            account = session.get(Account, connection.account_id)
            if account is None:
                raise NotFound(f"account {connection.account_id} not found")
            type_name = connection.data_type
            data_type = self._types.get(type_name)
            allow_extra = bool(connection.details.get("allow_extra_columns", False))
            account_id, tz = account.id, ZoneInfo(account.timezone)
            window = account.conversion_window_days
        size, sha256 = _digest(path)
        totals = {"total": 0, "errors": 0}
        file_errors: list[tuple[str, str]] = []
        found = _ErrorList(max(max_errors, 0))
        state = "failed"
        with self._sessions() as session:
            # Takes the write lock (SQLite) and the connection's lock (PostgreSQL) as an
            # import does: the ledger the sample is checked against is the one it would
            # meet, and the rows it adds for a moment clash with no running import.
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            try:
                session.execute(
                    select(Connection.id).where(Connection.id == connection_id).with_for_update()
                )
                duplicate = self._already_imported(session, connection_id, sha256, 0)
                if duplicate:
                    file_errors.append(
                        (
                            "DUPLICATE_FILE",
                            "the same bytes were already imported through this "
                            "connection; a real upload would import nothing again",
                        )
                    )
                if data_type is None:
                    file_errors.append(
                        ("UNSUPPORTED_FORMAT", f"data type '{type_name}' is not imported")
                    )
                else:
                    # The rows a data type imports point at their file: a stand-in row,
                    # rolled back with them.
                    trace_id = str(uuid.uuid4())
                    stand_in = File(
                        trace_id=trace_id,
                        account_id=account_id,
                        connection_id=connection_id,
                        direction="inbound",
                        name=name,
                        size=size,
                        sha256=sha256,
                        storage_key=f"dry-run/{trace_id}",
                        source=DRY_RUN_SOURCE,
                        state="processing",
                    )
                    session.add(stand_in)
                    session.flush()
                    _, state = self._import(
                        session,
                        lambda: path.open("rb"),
                        lambda _header: found,
                        data_type,
                        allow_extra,
                        name,
                        totals,
                        file_errors,
                        ImportContext(
                            file_id=stand_in.id,
                            account_id=account_id,
                            connection_id=connection_id,
                            timezone=tz,
                            now=self._clock(),
                            window_days=window,
                            actor=f"dry-run:{trace_id}",
                            reject=lambda r, e: None,
                        ),
                    )
            finally:
                session.rollback()
        return DryRun(
            state="duplicate" if duplicate else state,
            total_rows=totals["total"],
            ok_rows=_imported(totals),
            error_rows=totals["errors"],
            file_errors=tuple(file_errors),
            # Rules checked at the end (ledger lookups) report late: shown by line.
            errors=tuple(sorted(found.found, key=lambda e: e.line)),
            more_errors=found.rows - len(found.found),
        )

    @staticmethod
    def _already_imported(session: Session, connection_id: int, sha256: str, file_id: int) -> bool:
        found = session.scalar(
            select(File.id)
            .where(
                File.connection_id == connection_id,
                File.sha256 == sha256,
                File.id != file_id,
                File.state.in_(("processed", "partial")),
            )
            .limit(1)
        )
        return found is not None

    def _finish(
        self,
        session: Session,
        claim: Claim,
        state: str,
        totals: dict[str, int],
        file_errors: list[tuple[str, str]],
    ) -> None:
        now = self._clock()
        done = session.execute(
            update(File)
            .where(File.id == claim.file_id, File.claim_token == claim.token)
            .values(
                state=state,
                claim_token=None,
                lease_until=None,
                finished_at=now,
                updated_at=now,
                total_rows=totals["total"],
                ok_rows=_imported(totals),
                error_rows=totals["errors"],
                last_error="; ".join(m for _, m in file_errors) or None,
            )
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise Transient("the claim on this file was lost; it will be processed again")
        reason = (
            f"{totals['total']} rows, {_imported(totals)} imported, {totals['errors']} rejected"
        )
        if file_errors:
            reason += "; " + "; ".join(f"{c}: {m}" for c, m in file_errors)
        session.add(FileEvent(file_id=claim.file_id, at=now, state=state, reason=reason))

    def _answer(
        self,
        file_id: int,
        connection_id: int,
        file_name: str,
        summary: Summary,
        errors: ErrorFile | None,
    ) -> None:
        try:
            self._channel.deliver(
                connection_id=connection_id,
                file_name=file_name,
                summary=summary.to_bytes(),
                errors=errors.path if errors else None,
            )
        except Exception:
            log.exception("file %s: results could not be delivered", file_id)
        finally:
            if errors is not None:
                errors.path.unlink(missing_ok=True)
        with transaction(self._sessions) as session:
            row = session.get(File, file_id)
            if row is not None:
                row.summary = summary.document()


def _digest(path: Path) -> tuple[int, str]:
    """The size and SHA-256 of a file, as a commit records them."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _imported(totals: dict[str, int]) -> int:
    """Rows imported: all but the rejected ones, or none when the file failed as a whole."""
    return totals.get("imported", totals["total"] - totals["errors"])


class _Heartbeat:
    """Renews a claim's lease every third of the lease while a file is processed."""

    def __init__(self, processor: Processor, claim: Claim) -> None:
        self._processor = processor
        self._claim = claim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        every = max(self._processor.lease.total_seconds() / 3, 0.2)
        while not self._stop.wait(every):
            try:
                self._processor.renew(self._claim)
            except Exception:  # on SQLite the import holds the lock; nothing can steal it
                log.debug("lease of file %s not renewed this time", self._claim.file_id)
