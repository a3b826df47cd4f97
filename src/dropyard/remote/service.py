"""Remote connections: tests, host trust, pull runs and deliveries.

This is the one place where a connection becomes an `Endpoint`: its details, its
credential (decrypted here, for the client only) and the address the network guard
checked. Pulls (`pull.py`) and deliveries (`deliver.py`) reach partners through it, and it
keeps a connection's trust state: a server presenting another host key or certificate
than the pinned one moves nothing, and the connection says why, until an admin approves
exactly what the server presents.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select

from dropyard.accounts import audit
from dropyard.accounts.actors import SYSTEM, Actor
from dropyard.accounts.service import find_account
from dropyard.connections import trust
from dropyard.connections.details import validate_details
from dropyard.connections.models import Connection
from dropyard.credentials.models import HOSTED_KINDS, Credential
from dropyard.credentials.service import CredentialService
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import DropyardError, Invalid, NotFound
from dropyard.files.service import FileService
from dropyard.jobs.scheduler import RunState
from dropyard.remote import probe as probing
from dropyard.remote.base import (
    Endpoint,
    Limits,
    NotTrusted,
    Opener,
    ProbeReport,
    RemoteError,
    RemoteFolder,
    RemoteRefused,
)
from dropyard.remote.deliver import Deliverer, DeliverResult
from dropyard.remote.links import DownloadLinks
from dropyard.remote.mailer import Mailer
from dropyard.remote.pull import AttachmentReader, Mailbox, Puller, PullResult, Target

log = logging.getLogger(__name__)

__all__ = ["DeliverResult", "PullResult", "RemoteLogin", "RemoteService"]


class Guard(Protocol):
    def check(self, host: str, port: int) -> str: ...


class PinnedMailbox(Mailbox, Protocol):
    """A mailbox session that says which certificate it saw (remote/imap.py's)."""

    @property
    def presented(self) -> str:
        """The certificate's fingerprint ("" without TLS), as `RemoteFolder.presented`."""


class MailboxOpener(Protocol):
    def __call__(self, endpoint: Endpoint, limits: Limits) -> PinnedMailbox: ...


class RunRecorder(Protocol):
    def finish_run(self, run_id: str, state: RunState, reason: str) -> bool: ...


@dataclass(frozen=True)
class RemoteLogin:
    """The login a wizard has before the connection exists: an existing credential, or a
    new remote password (username and password), or a new key pair (username only: not
    generated yet, so nothing can log in with it)."""

    credential_id: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def key_pair_pending(self) -> bool:
        return self.credential_id is None and not self.password


class ResultFolders:
    """The `RemoteResults` seam of files/channels.py: results into a pull connection's
    result folder on the partner's server."""

    def __init__(self, service: RemoteService) -> None:
        self._service = service

    def deliver(self, connection_id: int, name: str, data: bytes | Path) -> None:
        self._service.write_result(connection_id, name, data)


class RemoteService:
    def __init__(
        self,
        sessions: SessionFactory,
        credentials: CredentialService,
        files: FileService,
        *,
        guard: Guard,
        openers: Mapping[str, Opener],
        open_mailbox: MailboxOpener | None,
        attachments: AttachmentReader | None,
        mailer: Mailer,
        links: DownloadLinks,
        limits: Callable[[], Limits],
        runs: RunRecorder,
        max_files_per_run: int = 500,
        stable_check: bool = True,
        relay: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._credentials = credentials
        self._files = files
        self._guard = guard
        self._openers = dict(openers)
        self._open_mailbox = open_mailbox
        self._attachments = attachments
        self._limits = limits
        self._runs = runs
        self._relay = relay
        self._clock = clock
        self.links = links
        self.results = ResultFolders(self)
        self._puller = Puller(
            sessions,
            files,
            self,
            attachments=attachments,
            max_files=max_files_per_run,
            stable_check=stable_check,
            sleep=sleep,
            clock=clock,
        )
        self._deliverer = Deliverer(
            sessions,
            files,
            self,
            target_of=self._target,
            trust_gate=self._trust_gate,
            on_failure=self._failure,
            on_success=lambda target: self._clear_error(target.connection_id),
            mailer=mailer,
            links=links,
            limits=limits,
            clock=clock,
        )

    # -- connection tests ---------------------------------------------------------------

    def probe(
        self,
        actor: Actor,
        *,
        account: str | int,
        method: str,
        methodology: str,
        details: Mapping[str, Any],
        credential: RemoteLogin | None,
    ) -> ProbeReport:
        """A live test before the connection exists (the wizard's review). Remote trouble
        never raises: each stage is a verdict."""
        actor.require_role("member")
        with self._sessions() as session:
            owner = find_account(session, account)
            actor.require_account(owner.id, what="account")
            if credential is not None and credential.credential_id is not None:
                found = session.get(Credential, credential.credential_id)
                if (
                    found is None
                    or found.account_id != owner.id
                    or found.kind in HOSTED_KINDS
                    or found.revoked_at is not None
                ):
                    raise NotFound(
                        f"credential {credential.credential_id} not found", field="credential"
                    )
        return self._probe(
            method,
            methodology,
            dict(details),
            credential,
            pinned=trust.typed_pin(method, methodology, details),
            creating=True,
        )

    def test(self, actor: Actor, connection_id: int) -> ProbeReport:
        """The same live test for an existing connection, with its pin and credential."""
        actor.require_role("member")
        target = self._target(connection_id)
        actor.require_account(target.account_id, what=f"connection {connection_id}")
        if target.methodology not in ("pull", "deliver"):
            raise Invalid(
                f"connection '{target.name}' is hosted by Dropyard: there is no partner's "
                "server to test"
            )
        login = None if target.credential_id is None else RemoteLogin(target.credential_id)
        return self._probe(
            target.method,
            target.methodology,
            dict(target.details),
            login,
            pinned=trust.typed_pin(target.method, target.methodology, target.details),
            creating=False,
        )

    def _probe(
        self,
        method: str,
        methodology: str,
        details: dict[str, Any],
        login: RemoteLogin | None,
        *,
        pinned: str | None,
        creating: bool,
    ) -> ProbeReport:
        checks = probing.Checks(method=method, methodology=methodology, details=details)
        if method == "email" and methodology == "deliver":
            return checks.relay(self._relay)
        try:
            endpoint = self._endpoint(method, methodology, details, None)
        except (RemoteError, RemoteRefused) as exc:
            return checks.unreachable(exc.message)
        no_login = login is None or login.key_pair_pending
        presented: str | None = None
        if trust.pin_detail(method, methodology, details) is not None:
            # Seen before any credential is sent, so a review shows it whatever the login.
            try:
                presented = self._presented(method, endpoint, self._limits())
            except (RemoteError, RemoteRefused) as exc:
                return checks.unreachable(exc.message, stage=exc.stage)
            checks.reached(f"{endpoint.host}:{endpoint.port} answered")
        what = "host key" if method == "sftp" else "certificate"
        if not checks.trusted(what=what, presented=presented, pinned=pinned, creating=creating):
            return checks.report(presented)
        if login is None or no_login:
            return checks.no_login(login is not None, presented)
        try:
            full = replace(endpoint, **self._secret(login))
        except DropyardError as exc:
            return checks.login_failed(exc.message, presented)
        # Log in only to the server just seen: a different one now fails the trust check.
        full = replace(full, pin=presented)
        if method == "email":
            return checks.mailbox(
                lambda: self._mailbox(full),
                self._attachments,
                full.username,
                presented=presented,
            )
        opener = self._opener(method)
        result_folder = details.get("result_folder") if methodology == "pull" else None
        return checks.folder(
            lambda: opener(full, self._limits()),
            result=(lambda: opener(replace(full, folder=str(result_folder)), self._limits()))
            if result_folder
            else None,
            presented=presented,
            username=full.username,
        )

    def _presented(self, method: str, endpoint: Endpoint, limits: Limits) -> str:
        """What the server presents, learnt without sending a credential: a pin nothing
        matches makes the client stop at the trust check (a mailbox's before LOGIN)."""
        bogus = probing.UNMATCHABLE_SSH if method == "sftp" else probing.UNMATCHABLE_TLS
        unmatchable = replace(endpoint, pin=bogus, password=None, private_key=None)
        try:
            if method == "email":
                if self._open_mailbox is None:
                    raise RemoteRefused("this installation cannot read mailboxes", stage="reach")
                box = self._open_mailbox(unmatchable, limits)
                with box:  # a client that checks nothing: take what it saw
                    return box.presented
            folder = self._opener(method)(unmatchable, limits)
        except NotTrusted as exc:
            return exc.presented
        folder.close()  # a client that checks nothing: take what it saw
        return folder.presented

    # -- trust --------------------------------------------------------------------------

    def approve(self, actor: Actor, connection_id: int, *, fingerprint: str) -> None:
        """Pin what the server presents now, if it is `fingerprint` (admin only)."""
        actor.require_role("admin")
        target = self._target(connection_id)
        actor.require_account(target.account_id, what=f"connection {connection_id}")
        key = trust.pin_detail(target.method, target.methodology, target.details)
        if key is None:
            raise Invalid(
                f"connection '{target.name}' has no host key or certificate to approve",
                field="fingerprint",
            )
        what = "host key" if target.method == "sftp" else "certificate"
        endpoint = self._endpoint(target.method, target.methodology, target.details, None)
        presented = self._presented(target.method, endpoint, self._limits())
        if not trust.same(fingerprint, presented):
            raise Invalid(
                f"{fingerprint.strip()[:100]} is not the {what} the server presents now "
                f"({presented}); approve exactly what it presents",
                field="fingerprint",
            )
        with transaction(self._sessions) as session:
            row = session.get(Connection, connection_id)
            if row is None:
                raise NotFound(f"connection {connection_id} not found")
            before = row.details.get(key)
            row.details = validate_details(
                row.direction,
                row.methodology,
                row.method,
                row.data_type,
                {**row.details, key: presented},
            )
            row.remote_error = row.remote_error_at = row.presented_fingerprint = None
            row.updated_at = self._clock()
            audit.record(
                session,
                actor=actor,
                action="connection.approve_host",
                target=f"connection:{connection_id}",
                account_id=row.account_id,
                detail={"fingerprint": presented, "before": before},
            )

    def _trust_gate(self, target: Target) -> None:
        """Refuse to move anything while the server's key is not trusted."""
        key = trust.pin_detail(target.method, target.methodology, target.details)
        if key is None:
            return
        what = "host key" if target.method == "sftp" else "certificate"
        if target.presented_fingerprint:
            raise RemoteRefused(
                f"the server's {what} changed: it presented {target.presented_fingerprint}, "
                f"{target.details.get(key)} is pinned; a user must re-approve it",
                stage="trust",
            )
        if not target.details.get(key):
            raise RemoteRefused(
                f"the server's {what} is not pinned yet: test the connection and approve "
                "the fingerprint it shows",
                stage="trust",
            )

    def _failure(self, target: Target, exc: DropyardError) -> str:
        """Mark the connection with a transfer's error; the message for the run/history."""
        now = self._clock()
        message = exc.message
        presented: str | None = None
        if isinstance(exc, NotTrusted):
            key = trust.pin_detail(target.method, target.methodology, target.details)
            what = "host key" if target.method == "sftp" else "certificate"
            pinned = target.details.get(key) if key else None
            presented = exc.presented
            message = (
                f"the server's {what} changed: it presented {presented}, {pinned} is pinned; "
                "a user must re-approve it"
            )
        with transaction(self._sessions) as session:
            row = session.get(Connection, target.connection_id)
            if row is not None:
                row.remote_error, row.remote_error_at = message[:2000], now
                if presented is not None:
                    row.presented_fingerprint = presented[:200]
                    audit.record(
                        session,
                        actor=SYSTEM,
                        action="connection.host_changed",
                        target=f"connection:{row.id}",
                        account_id=row.account_id,
                        detail={"presented": presented},
                    )
        return message

    def _clear_error(self, connection_id: int) -> None:
        with transaction(self._sessions) as session:
            row = session.get(Connection, connection_id)
            if row is None:
                return
            row.last_active_at = self._clock()
            if row.remote_error is not None and row.presented_fingerprint is None:
                row.remote_error = row.remote_error_at = None

    # -- pull ---------------------------------------------------------------------------

    def pull(self, connection_id: int, *, run_id: str | None = None) -> PullResult:
        """One pull run; its outcome goes to the scheduled run `run_id` when given.
        Remote trouble fails the run (and marks the connection); it is not raised."""
        target = self._target(connection_id)
        if target.direction != "inbound" or target.methodology != "pull":
            raise Invalid(f"connection '{target.name}' is not a pull connection")
        result = self._pull(target, run_id)
        if run_id is not None:
            self._runs.finish_run(run_id, result.state, result.reason)
        log.info("pull of connection %s: %s: %s", connection_id, result.state, result.reason)
        return result

    def _pull(self, target: Target, run_id: str | None) -> PullResult:
        if target.status != "active":
            reason = f"not run: the connection is {target.status}"
            return PullResult(target.connection_id, run_id, "skipped", reason)
        limits = self._limits()
        try:
            self._trust_gate(target)
            if target.method == "email":
                state, reason, tally = self._puller.run_mailbox(target, limits)
            else:
                state, reason, tally = self._puller.run_folder(target, limits)
        except DropyardError as exc:
            message = self._failure(target, exc)
            return PullResult(target.connection_id, run_id, "failed", f"failed: {message}")
        if state == "failed":
            self._failure(target, RemoteError(reason, stage="transfer"))
        else:
            self._clear_error(target.connection_id)
        return PullResult(
            target.connection_id,
            run_id,
            state,
            reason,
            taken=tuple(tally.taken),
            file_ids=tuple(tally.file_ids),
            skipped=tuple(tally.skipped),
            failed=tuple(tally.failed),
        )

    def is_pull(self, connection_id: int) -> bool:
        with self._sessions() as session:
            methodology = session.scalar(
                select(Connection.methodology).where(Connection.id == connection_id)
            )
            return methodology == "pull"

    # -- deliver ------------------------------------------------------------------------

    def deliver(self, file_id: int) -> DeliverResult:
        """One delivery attempt of a generated outbound file."""
        return self._deliverer.deliver(file_id)

    def due_deliveries(self, *, limit: int = 200) -> list[int]:
        return self._deliverer.due(limit=limit)

    def retry_delay(self, result: DeliverResult) -> float | None:
        return self._deliverer.retry_delay(result)

    # -- results into the partner's result folder (files/channels.py RemoteResults) -------

    def write_result(self, connection_id: int, name: str, data: bytes | Path) -> None:
        """Upload a receipt or result to the connection's result folder (temp + rename)."""
        target = self._target(connection_id)
        result_folder = target.details.get("result_folder")
        if not result_folder:
            return
        self._trust_gate(target)
        try:
            with self.open_folder(target, self._limits(), folder=str(result_folder)) as folder:
                if isinstance(data, Path):
                    with data.open("rb") as stream:
                        folder.upload(name, stream, data.stat().st_size)
                else:
                    folder.upload(name, io.BytesIO(data), len(data))
        except NotTrusted as exc:
            raise RemoteRefused(self._failure(target, exc), stage="trust") from None

    # -- Access: the one place a connection becomes an Endpoint ------------------------

    def open_folder(
        self, target: Target, limits: Limits, *, folder: str | None = None
    ) -> RemoteFolder:
        endpoint = self._endpoint(
            target.method, target.methodology, target.details, target.credential_id
        )
        if folder is not None:
            endpoint = replace(endpoint, folder=folder)
        return self._opener(target.method)(endpoint, limits)

    def open_mailbox(self, target: Target, limits: Limits) -> Mailbox:
        endpoint = self._endpoint(
            target.method, target.methodology, target.details, target.credential_id
        )
        if self._open_mailbox is None:
            raise RemoteRefused("this installation cannot read mailboxes", stage="reach")
        return self._open_mailbox(endpoint, limits)

    @contextmanager
    def _mailbox(self, endpoint: Endpoint) -> Iterator[Mailbox]:
        if self._open_mailbox is None:
            raise RemoteRefused("this installation cannot read mailboxes", stage="reach")
        with self._open_mailbox(endpoint, self._limits()) as box:
            yield box

    def _endpoint(
        self,
        method: str,
        methodology: str,
        details: Mapping[str, Any],
        login: int | RemoteLogin | None,
    ) -> Endpoint:
        """Where and as whom to connect: the network guard's address, the pin, the
        credential. The one place a connection's details become an Endpoint."""
        host = str(details.get("host") or "")
        try:
            port = int(details.get("port") or 0)
        except (TypeError, ValueError):
            port = 0
        address = self._guard.check(host, port)
        key = trust.pin_detail(method, methodology, details)
        pin = details.get(key) if key else None
        if isinstance(login, int):
            login = RemoteLogin(credential_id=login)
        return Endpoint(
            host=host,
            address=address,
            port=port,
            folder=str(details.get("folder") or "/"),
            pin=str(pin) if pin else None,
            plain=bool(details.get("plain_ftp") or details.get("plain_imap")),
            **self._secret(login),
        )

    def _secret(self, login: RemoteLogin | None) -> dict[str, Any]:
        if login is None:
            return {"username": ""}
        if login.credential_id is not None:
            secret = self._credentials.remote_secret(login.credential_id)
            return {
                "username": secret.username,
                "password": secret.password,
                "private_key": secret.private_key,
            }
        return {"username": login.username or "", "password": login.password}

    def _opener(self, method: str) -> Opener:
        opener = self._openers.get(method)
        if opener is None:
            raise RemoteRefused(f"this installation has no {method} client", stage="reach")
        return opener

    def _target(self, connection_id: int) -> Target:
        with self._sessions() as session:
            row = session.get(Connection, connection_id)
            if row is None:
                raise NotFound(f"connection {connection_id} not found")
            return Target(
                connection_id=row.id,
                account_id=row.account_id,
                name=row.name,
                direction=row.direction,
                method=row.method,
                methodology=row.methodology,
                status=row.status,
                credential_id=row.credential_id,
                details=dict(row.details),
                presented_fingerprint=row.presented_fingerprint,
            )
