"""One pull run: take what is new and complete from a partner's folder or mailbox.

A folder run lists twice, `stable_seconds` apart. The first listing streams through the
filter (hidden and Dropyard's own names, the pattern, the upload name rules, what was
taken before — looked up a batch at a time) and keeps only the candidates, at most
`max_files` of them; the second keeps the candidates whose size and modification time did
not change. Each is fetched into a spool and committed like a pushed file, with its
`remote_taken` row in the same transaction, so a file is never taken twice and a crash
between the two takes nothing. One file failing does not stop the others.

A mailbox run takes messages: all of a message's attachments are files, or none is (a
message with one attachment that does not match is refused, flagged, and not retried).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dropyard.accounts.actors import SYSTEM
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import DropyardError, Invalid
from dropyard.files import names
from dropyard.files.models import File, FileEvent
from dropyard.files.service import FileService, FileView, OnRecord, receipt_text
from dropyard.files.spool import Spool
from dropyard.jobs.scheduler import RunState
from dropyard.remote.base import Limits, RemoteEntry, RemoteError, RemoteFolder, RemoteRefused
from dropyard.remote.models import RemoteTaken
from dropyard.remote.selection import TAKEN_BATCH, select_candidates, taken_lookup, unchanged

log = logging.getLogger(__name__)

SOURCES = {"sftp": "sftp-pull", "ftp": "ftp-pull", "email": "imap-pull"}
_SHOWN = 5  # names or reasons a run's reason spells out; the rest are counted

Sleep = Callable[[float], None]


# -- what the service gives a run -------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A pull or deliver connection as one run reads it, once, at its start."""

    connection_id: int
    account_id: int
    name: str
    direction: str
    method: str
    methodology: str
    status: str
    credential_id: int | None
    details: Mapping[str, Any]
    presented_fingerprint: str | None = None

    @property
    def folder(self) -> str:
        return str(self.details.get("folder") or "/")

    @property
    def where(self) -> str:
        """The partner's folder as a person reads it, e.g. sftp://host:22/outgoing."""
        scheme = self.method
        if self.method == "ftp":
            scheme = "ftp" if self.details.get("plain_ftp") else "ftps"
        elif self.method == "email":
            scheme = "imap" if self.details.get("plain_imap") else "imaps"
        host, port = self.details.get("host", ""), self.details.get("port", "")
        folder = self.folder if self.folder.startswith("/") else f"/{self.folder}"
        return f"{scheme}://{host}:{port}{folder}"


class MailMessage(Protocol):
    """One message of a mailbox as its listing shows it."""

    @property
    def uid(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def internal_date(self) -> int:
        """When the server received it, seconds since the epoch (0: unknown)."""


class Mailbox(Protocol):
    """A logged-in session at one IMAP mailbox (remote/imap.py)."""

    @property
    def uidvalidity(self) -> int: ...

    def messages(self) -> Iterator[MailMessage]: ...

    def fetch(self, uid: int) -> bytes: ...

    def mark_taken(self, uid: int) -> None: ...

    def mark_refused(self, uid: int) -> None: ...

    def delete(self, uid: int) -> None: ...

    def __enter__(self) -> Mailbox: ...

    def __exit__(self, *exc: object) -> None: ...


class Access(Protocol):
    """How a run reaches the partner: the service builds endpoints in one place."""

    def open_folder(
        self, target: Target, limits: Limits, *, folder: str | None = None
    ) -> RemoteFolder: ...

    def open_mailbox(self, target: Target, limits: Limits) -> Mailbox: ...


AttachmentReader = Callable[[bytes], list[tuple[str, bytes]]]


# -- what a run did ---------------------------------------------------------------------


@dataclass(frozen=True)
class PullResult:
    """One run's outcome: its state (as the scheduled run records it) and why."""

    connection_id: int
    run_id: str | None
    state: RunState
    reason: str
    taken: tuple[str, ...] = ()
    file_ids: tuple[int, ...] = ()
    skipped: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


@dataclass
class _Tally:
    taken: list[str] = field(default_factory=list)
    file_ids: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    skipped_count: int = 0
    failed: list[str] = field(default_factory=list)
    changing: list[str] = field(default_factory=list)
    more: int = 0
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < _SHOWN:
            self.skipped.append(reason)

    def state(self) -> RunState:
        if self.taken:
            return "done"
        return "failed" if self.failed else "empty"

    def reason(self, *, nothing: str) -> str:
        parts: list[str] = []
        if self.taken:
            word = "file" if len(self.taken) == 1 else "files"
            parts.append(f"took {len(self.taken)} {word} ({_names(self.taken)})")
        if self.failed:
            parts.append(f"{len(self.failed)} failed: " + "; ".join(self.failed[:_SHOWN]))
        if self.skipped_count:
            parts.append(f"{self.skipped_count} skipped: " + "; ".join(self.skipped))
        if self.changing:
            parts.append(
                f"{len(self.changing)} still changing ({_names(self.changing)}), "
                "taken once complete"
            )
        if self.more:
            parts.append(f"{self.more} more waiting for the next run")
        parts.extend(self.notes)
        if not (self.taken or self.failed):
            parts.insert(0, nothing)
        return "; ".join(parts)


def _names(found: Sequence[str]) -> str:
    shown = ", ".join(found[:_SHOWN])
    return shown + (f" and {len(found) - _SHOWN} more" if len(found) > _SHOWN else "")


def _remember(connection_id: int, name: str, size: int, mtime: int) -> OnRecord:
    def add(session: Session, views: Sequence[FileView]) -> None:
        first = views[0]
        session.add(
            RemoteTaken(
                connection_id=connection_id,
                name=name,
                size=size,
                mtime=mtime,
                sha256=first.sha256,
                file_id=first.id,
            )
        )

    return add


# -- the run ----------------------------------------------------------------------------


class Puller:
    """Runs pulls; reaching the partner is the service's (`Access`)."""

    def __init__(
        self,
        sessions: SessionFactory,
        files: FileService,
        access: Access,
        *,
        attachments: AttachmentReader | None,
        max_files: int,
        stable_check: bool = True,
        sleep: Sleep = time.sleep,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._files = files
        self._access = access
        self._attachments = attachments
        self._max_files = max_files
        self._stable_check = stable_check
        self._sleep = sleep
        self._clock = clock

    # -- a folder -----------------------------------------------------------------------

    def run_folder(self, target: Target, limits: Limits) -> tuple[RunState, str, _Tally]:
        """List, wait, list again, take. Raises the RemoteError family when the folder
        itself cannot be reached or listed (a failed run)."""
        pattern = str(target.details.get("file_pattern") or "*")
        wait = float(target.details.get("stable_seconds") or 0) if self._stable_check else 0.0
        tally = _Tally()
        session = _Session(self._access, target, limits)
        try:
            folder = session.get()
            selection = select_candidates(
                folder.list(),
                pattern=pattern,
                cap=self._max_files,
                taken=taken_lookup(self._sessions, target.connection_id),
            )
            tally.skipped, tally.skipped_count = selection.skipped, selection.skipped_count
            tally.more = selection.more
            stable = selection.candidates
            if stable and wait > 0:
                # A long wait would outlast the server's idle timeout: log in again after.
                if wait > limits.idle_timeout / 2:
                    session.drop()
                self._sleep(wait)
                stable, tally.changing = unchanged(stable, session.get().list())
            stable.sort(key=lambda e: (e.mtime, e.name))
            self._take_all(target, limits, session, stable, tally)
        finally:
            session.drop()
        nothing = f"nothing new in {target.where} matches '{pattern}'"
        return tally.state(), tally.reason(nothing=nothing), tally

    def _take_all(
        self,
        target: Target,
        limits: Limits,
        session: _Session,
        entries: Sequence[RemoteEntry],
        tally: _Tally,
    ) -> None:
        receipts = _Receipts(self, self._access, target, limits)
        delete = bool(target.details.get("delete_after_pull"))
        try:
            for index, entry in enumerate(entries):
                if limits.remaining() <= 0:
                    tally.more += len(entries) - index
                    tally.notes.append("the run reached its time limit")
                    break
                try:
                    folder = session.get()
                except (RemoteError, RemoteRefused) as exc:  # the server is gone: next run
                    tally.failed.extend(f"{e.name}: {exc.message}" for e in entries[index:])
                    break
                try:
                    view = self._take(target, folder, entry)
                except RemoteError as exc:
                    # A stalled or broken session: the next file gets a fresh one.
                    session.drop()
                    tally.failed.append(f"{entry.name}: {exc.message}")
                    log.warning(
                        "pull of connection %s: %s failed: %s",
                        target.connection_id,
                        entry.name,
                        exc.message,
                    )
                    continue
                except IntegrityError:  # another run took this very version just now
                    tally.notes.append(f"{entry.name} was taken by another run")
                    continue
                except Exception as exc:
                    tally.failed.append(f"{entry.name}: {_message(exc)}")
                    _log_failure(target, entry.name, exc)
                    continue
                if view is None:
                    tally.changing.append(entry.name)
                    continue
                tally.taken.append(entry.name)
                tally.file_ids.append(view.id)
                receipts.write(view)
                if delete:
                    try:
                        folder.delete(entry.name)
                    except (RemoteError, RemoteRefused) as exc:
                        tally.notes.append(f"{entry.name} taken but not deleted: {exc.message}")
        finally:
            receipts.close()

    def _take(self, target: Target, folder: RemoteFolder, entry: RemoteEntry) -> FileView | None:
        spool = self._files.open_spool()
        try:
            folder.fetch(entry.name, spool)
        except BaseException:
            spool.discard()
            raise
        if spool.size != entry.size:  # changed since the listing: next run
            spool.discard()
            return None
        return self._files.commit(
            spool,
            connection_id=target.connection_id,
            name=entry.name,
            source=SOURCES[target.method],
            actor=SYSTEM,
            address=str(target.details.get("host", "")),
            on_record=_remember(target.connection_id, entry.name, entry.size, entry.mtime),
            receipt=False,
        )

    def history(self, file_id: int, reason: str) -> None:
        """A note in a file's history that does not change its state."""
        with transaction(self._sessions) as session:
            row = session.get(File, file_id)
            if row is not None:
                session.add(
                    FileEvent(file_id=file_id, at=self._clock(), state=row.state, reason=reason)
                )

    # -- a mailbox ----------------------------------------------------------------------

    def run_mailbox(self, target: Target, limits: Limits) -> tuple[RunState, str, _Tally]:
        if self._attachments is None:
            raise RemoteRefused("this installation cannot read mailboxes", stage="reach")
        pattern = str(target.details.get("file_pattern") or "*")
        delete = bool(target.details.get("delete_after_pull"))
        tally = _Tally()
        refused = 0
        with self._access.open_mailbox(target, limits) as box:
            validity = box.uidvalidity
            waiting: list[tuple[int, int, int]] = []
            for message in box.messages():
                if len(waiting) >= self._max_files:
                    tally.more += 1
                    continue
                waiting.append((message.uid, message.size, message.internal_date))
            taken = self._taken_messages(target.connection_id, validity, waiting)
            for uid, size, received in waiting:
                key = f"imap:{validity}:{uid}"
                if key in taken:  # taken before, but its flag did not stick: flag it now
                    self._after_take(box, uid, delete, tally)
                    continue
                if limits.remaining() <= 0:
                    tally.more += 1
                    continue
                try:
                    raw = box.fetch(uid)
                    parts = self._attachments(raw)
                    problem = _refusal(parts, pattern)
                    if problem is not None:
                        box.mark_refused(uid)
                        refused += 1
                        tally.skip(f"message {uid} refused: {problem}")
                        continue
                    views = self._commit_message(target, key, size, received, parts)
                except IntegrityError:
                    tally.notes.append(f"message {uid} was taken by another run")
                    continue
                except Exception as exc:
                    tally.failed.append(f"message {uid}: {_message(exc)}")
                    _log_failure(target, f"message {uid}", exc)
                    continue
                tally.taken.extend(v.name for v in views)
                tally.file_ids.extend(v.id for v in views)
                self._after_take(box, uid, delete, tally)
        if refused:
            tally.notes.append("refused messages are flagged $DropyardRefused and not retried")
        nothing = f"no new message in {target.where} has attachments matching '{pattern}'"
        return tally.state(), tally.reason(nothing=nothing), tally

    def _taken_messages(
        self, connection_id: int, validity: int, waiting: Sequence[tuple[int, int, int]]
    ) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(waiting), TAKEN_BATCH):
            batch = waiting[start : start + TAKEN_BATCH]
            keys = [f"imap:{validity}:{uid}" for uid, _, _ in batch]
            with self._sessions() as session:
                found.update(
                    session.scalars(
                        select(RemoteTaken.name).where(
                            RemoteTaken.connection_id == connection_id,
                            RemoteTaken.name.in_(keys),
                        )
                    )
                )
        return found

    def _commit_message(
        self,
        target: Target,
        key: str,
        size: int,
        received: int,
        parts: Sequence[tuple[str, bytes]],
    ) -> list[FileView]:
        spools: list[tuple[Spool, str]] = []
        try:
            for name, content in parts:
                spool = self._files.open_spool()
                spools.append((spool, name))
                spool.write(content)
        except BaseException:
            for spool, _ in spools:
                spool.discard()
            raise
        return self._files.commit_many(
            spools,
            connection_id=target.connection_id,
            source=SOURCES["email"],
            actor=SYSTEM,
            address=str(target.details.get("host", "")),
            on_record=_remember(target.connection_id, key, size, received),
            receipt=False,
        )

    @staticmethod
    def _after_take(box: Mailbox, uid: int, delete: bool, tally: _Tally) -> None:
        try:
            if delete:
                box.delete(uid)
            else:
                box.mark_taken(uid)
        except (RemoteError, RemoteRefused) as exc:
            tally.notes.append(f"message {uid} taken but not flagged: {exc.message}")


def _refusal(parts: Sequence[tuple[str, bytes]], pattern: str) -> str | None:
    """Why a message's attachments cannot all be taken, or None."""
    if not parts:
        return "it has no attachment"
    for name, _ in parts:
        try:
            names.check_upload_name(name)
        except Invalid as exc:
            return exc.message
        if not fnmatchcase(name, pattern):
            return f"attachment '{name[:100]}' does not match '{pattern}'"
    return None


def _log_failure(target: Target, what: str, exc: Exception) -> None:
    if isinstance(exc, DropyardError | OSError):
        log.warning("pull of connection %s: %s failed: %s", target.connection_id, what, exc)
    else:
        log.exception("pull of connection %s: %s failed unexpectedly", target.connection_id, what)


def _message(exc: BaseException) -> str:
    if isinstance(exc, DropyardError):
        return exc.message
    return f"local error: {exc.strerror or exc}" if isinstance(exc, OSError) else "internal error"


class _Session:
    """A run's session with the partner's folder, opened when needed and replaced after
    it broke (a stalled transfer leaves a session that can only be closed)."""

    def __init__(self, access: Access, target: Target, limits: Limits) -> None:
        self._access = access
        self._target = target
        self._limits = limits
        self._folder: RemoteFolder | None = None

    def get(self) -> RemoteFolder:
        if self._folder is None:
            self._folder = self._access.open_folder(self._target, self._limits)
        return self._folder

    def drop(self) -> None:
        folder, self._folder = self._folder, None
        if folder is not None:
            try:
                folder.close()
            except (DropyardError, OSError):
                log.debug("closing a session failed", exc_info=True)


class _Receipts:
    """A run's receipts, written to the partner's result folder over one session (opened
    when the first is written). A receipt that cannot be written is noted in its file's
    history: it never fails the import."""

    def __init__(self, puller: Puller, access: Access, target: Target, limits: Limits) -> None:
        self._puller = puller
        self._access = access
        self._target = target
        self._limits = limits
        self._folder: RemoteFolder | None = None
        self._broken: str | None = None
        result_folder = target.details.get("result_folder")
        self._where = str(result_folder) if result_folder else None

    def write(self, view: FileView) -> None:
        if self._where is None:
            return
        name = names.receipt_name(view.name)
        try:
            if self._broken is not None:
                raise RemoteError(self._broken, stage="reach")
            if self._folder is None:
                self._folder = self._access.open_folder(
                    self._target, self._limits, folder=self._where
                )
            data = receipt_text(view, self._target.name)
            self._folder.upload(name, io.BytesIO(data), len(data))
        except (DropyardError, OSError) as exc:
            reason = _message(exc)
            if self._folder is None:
                self._broken = reason
            log.warning("receipt %s not written to %s: %s", name, self._where, reason)
            self._puller.history(view.id, f"receipt not written to {self._where}: {reason}")

    def close(self) -> None:
        if self._folder is not None:
            try:
                self._folder.close()
            except (DropyardError, OSError):
                log.debug("closing the result folder session failed", exc_info=True)
