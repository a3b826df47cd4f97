"""Delivering outbound files: one attempt at a time, claimed, with retries and backoff.

An outbound run of a `deliver` connection leaves its file `generated`. An attempt claims
it (a token and a lease, so two workers never send it twice), sends it — an upload to the
partner's SFTP/FTP(S) folder under a temporary name then renamed, the size checked; or a
mail through the relay, the file attached up to the connection's limit, else a signed
link — and records the outcome in the file's history: `delivered`, or the error and when
the next attempt is due; after the last attempt the file is `failed`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from dropyard.accounts import audit
from dropyard.accounts.actors import SYSTEM
from dropyard.connections.models import Connection
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import DropyardError, Invalid, NotFound, Transient
from dropyard.files.models import File, FileEvent
from dropyard.files.service import FileService
from dropyard.remote.base import Limits
from dropyard.remote.links import DownloadLinks, media_type
from dropyard.remote.mailer import Mailer
from dropyard.remote.pull import Access, Target

log = logging.getLogger(__name__)

# Waits after a failed attempt: attempt n+1 is due RETRY_AFTER[n-1] after attempt n fails.
RETRY_AFTER: tuple[timedelta, ...] = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=60),
)
MAX_ATTEMPTS = len(RETRY_AFTER) + 1
# A claim outlives the attempt it covers: the session's own time limit, and this margin.
LEASE_MARGIN = timedelta(minutes=5)
_MB = 1024 * 1024


@dataclass(frozen=True)
class DeliverResult:
    """What one attempt did. `next_try_at` is set when the file waits for another."""

    file_id: int
    state: str
    attempt: int
    reason: str
    next_try_at: datetime | None = None
    failed: bool = False  # this call made an attempt, and it failed


@dataclass(frozen=True)
class _Claimed:
    target: Target
    token: str
    attempt: int
    name: str
    size: int


TargetOf = Callable[[int], Target]
FailureOf = Callable[[Target, DropyardError], str]


class Deliverer:
    """Delivery attempts; reaching the partner is the service's (`Access`)."""

    def __init__(
        self,
        sessions: SessionFactory,
        files: FileService,
        access: Access,
        *,
        target_of: TargetOf,
        trust_gate: Callable[[Target], None],
        on_failure: FailureOf,
        on_success: Callable[[Target], None],
        mailer: Mailer,
        links: DownloadLinks,
        limits: Callable[[], Limits],
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._files = files
        self._access = access
        self._target_of = target_of
        self._trust_gate = trust_gate
        self._on_failure = on_failure
        self._on_success = on_success
        self._mailer = mailer
        self._links = links
        self._limits = limits
        self._clock = clock

    def deliver(self, file_id: int) -> DeliverResult:
        claimed = self._claim(file_id)
        if isinstance(claimed, DeliverResult):
            return claimed
        try:
            self._trust_gate(claimed.target)
            where = self._send(claimed, file_id)
        except DropyardError as exc:
            return self._failed(file_id, claimed, self._on_failure(claimed.target, exc))
        except OSError as exc:
            return self._failed(file_id, claimed, f"local error: {exc.strerror or exc}")
        except Exception:
            log.exception("delivery of file %s: unexpected error", file_id)
            return self._failed(file_id, claimed, "internal error")
        return self._delivered(file_id, claimed, where)

    def due(self, *, limit: int = 200) -> list[int]:
        """Generated files of active deliver connections whose attempt is due and not in
        flight: the sweep enqueues these (a lost queue message delays, never loses)."""
        now = self._clock()
        with self._sessions() as session:
            rows = session.scalars(
                select(File.id)
                .join(Connection, Connection.id == File.connection_id)
                .where(
                    File.direction == "outbound",
                    File.state == "generated",
                    Connection.methodology == "deliver",
                    Connection.status == "active",
                    or_(File.not_before.is_(None), File.not_before <= now),
                    or_(File.lease_until.is_(None), File.lease_until < now),
                )
                .order_by(File.id)
                .limit(limit)
            )
            return list(rows)

    def retry_delay(self, result: DeliverResult) -> float | None:
        if result.next_try_at is None:
            return None
        return max((result.next_try_at - self._clock()).total_seconds(), 0.0)

    # -- claim --------------------------------------------------------------------------

    def _claim(self, file_id: int) -> _Claimed | DeliverResult:
        now = self._clock()
        with self._sessions() as session:
            row = session.get(File, file_id)
            if row is None:
                raise NotFound(f"file {file_id} not found")
            connection = session.get(Connection, row.connection_id)
            if (
                connection is None
                or row.direction != "outbound"
                or connection.methodology != "deliver"
            ):
                raise Invalid(f"file {file_id} is not a file of a deliver connection")
            state, attempts, name, size = row.state, row.attempts, row.name, row.size
            not_before, lease_until = row.not_before, row.lease_until
            status, connection_id = connection.status, connection.id
        if state != "generated":
            return DeliverResult(file_id, state, attempts, f"nothing to do: the file is {state}")
        if lease_until is not None and lease_until > now:
            return DeliverResult(file_id, state, attempts, "another attempt is under way")
        if not_before is not None and not_before > now:
            return DeliverResult(
                file_id, state, attempts, f"next try at {_at(not_before)}", not_before
            )
        if status != "active":
            return DeliverResult(
                file_id, state, attempts, f"not delivered: the connection is {status}"
            )
        token = str(uuid.uuid4())
        lease = timedelta(seconds=max(self._limits().remaining(), 0.0)) + LEASE_MARGIN
        with transaction(self._sessions) as session:
            done = session.execute(
                update(File)
                .where(
                    File.id == file_id,
                    File.state == "generated",
                    or_(File.lease_until.is_(None), File.lease_until <= now),
                )
                .values(
                    claim_token=token,
                    lease_until=now + lease,
                    attempts=File.attempts + 1,
                    updated_at=now,
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return DeliverResult(file_id, state, attempts, "another attempt is under way")
        return _Claimed(self._target_of(connection_id), token, attempts + 1, name, size)

    # -- send ---------------------------------------------------------------------------

    def _send(self, claimed: _Claimed, file_id: int) -> str:
        target = claimed.target
        if target.method == "email":
            return self._mail(claimed, file_id)
        limits = self._limits()
        with (
            self._access.open_folder(target, limits) as folder,
            self._files.open_stored(file_id) as stream,
        ):
            folder.upload(claimed.name, stream, claimed.size)
        return f"{target.where.rstrip('/')}/{claimed.name}"

    def _mail(self, claimed: _Claimed, file_id: int) -> str:
        target = claimed.target
        recipients = [str(r) for r in target.details.get("recipients") or []]
        if not recipients:
            raise Invalid("the connection has no recipients", field="recipients")
        limit = int(target.details.get("max_attachment_mb") or 10) * _MB
        rows = ""
        with self._sessions() as session:
            row = session.get(File, file_id)
            if row is not None and row.total_rows is not None:
                rows = f" ({row.total_rows} rows)"
        subject = f"{target.name}: {claimed.name}"
        to = ", ".join(recipients)
        if claimed.size <= limit:
            with self._files.open_stored(file_id) as stream:
                content = stream.read(limit + 1)
            if len(content) != claimed.size:
                raise Transient(f"the stored file has {len(content)} bytes, not {claimed.size}")
            body = (
                f"{claimed.name}{rows} from the Dropyard connection '{target.name}' is attached.\n"
            )
            self._mailer.send(
                recipients, subject, body, [(claimed.name, content, media_type(claimed.name))]
            )
            return f"{to} (attached)"
        url, expires = self._links.url_for(file_id)
        body = (
            f"{claimed.name}{rows} from the Dropyard connection '{target.name}' is "
            f"{claimed.size} bytes, more than the {limit // _MB} MB sent as an attachment.\n"
            f"Download it until {_at(expires)}:\n\n{url}\n"
        )
        self._mailer.send(recipients, subject, body)
        return f"{to} (as a link valid until {_at(expires)})"

    # -- outcome ------------------------------------------------------------------------

    def _delivered(self, file_id: int, claimed: _Claimed, where: str) -> DeliverResult:
        now = self._clock()
        how = "by email to" if claimed.target.method == "email" else "to"
        reason = f"delivered {how} {where}"
        with transaction(self._sessions) as session:
            row = session.get(File, file_id)
            if row is None or row.claim_token != claimed.token:
                return DeliverResult(file_id, "generated", claimed.attempt, "the claim was lost")
            row.state, row.claim_token, row.lease_until = "delivered", None, None
            row.not_before, row.last_error = None, None
            row.finished_at = row.updated_at = now
            session.add(FileEvent(file_id=file_id, at=now, state="delivered", reason=reason))
            audit.record(
                session,
                actor=SYSTEM,
                action="file.deliver",
                target=f"file:{file_id}",
                account_id=row.account_id,
                detail={"name": row.name, "to": where, "attempt": claimed.attempt},
            )
        self._on_success(claimed.target)
        log.info("file %s %s (attempt %d)", file_id, reason, claimed.attempt)
        return DeliverResult(file_id, "delivered", claimed.attempt, reason)

    def _failed(self, file_id: int, claimed: _Claimed, reason: str) -> DeliverResult:
        now = self._clock()
        attempt = claimed.attempt
        last = attempt >= MAX_ATTEMPTS
        next_try = None if last else now + RETRY_AFTER[attempt - 1]
        text = f"delivery failed (attempt {attempt} of {MAX_ATTEMPTS}): {reason}"
        text += "; giving up" if next_try is None else f", next try at {_at(next_try)}"
        state = "failed" if last else "generated"
        with transaction(self._sessions) as session:
            row = session.get(File, file_id)
            if row is None or row.claim_token != claimed.token:
                return DeliverResult(file_id, "generated", attempt, "the claim was lost")
            row.state, row.claim_token, row.lease_until = state, None, None
            row.not_before, row.last_error = next_try, reason[:2000]
            row.updated_at = now
            if last:
                row.finished_at = now
            session.add(FileEvent(file_id=file_id, at=now, state=state, reason=text))
        log.warning("file %s: %s", file_id, text)
        return DeliverResult(file_id, state, attempt, text, next_try, failed=True)


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
