"""Connections of an account: the wizard's context and completion, listing, status, edits.

The wizard itself is pure (`wizard.py`); this service gives it what it needs to know about
the account and turns a completed wizard into rows, in one transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dropyard.accounts import audit
from dropyard.accounts.actors import Actor
from dropyard.accounts.service import find_account
from dropyard.connections import wizard
from dropyard.connections.details import validate_details
from dropyard.connections.models import Connection
from dropyard.connections.rules import credential_kinds_for
from dropyard.connections.trust import pin_detail
from dropyard.credentials.models import Credential
from dropyard.credentials.service import CredentialService, NewCredentialInput, Provisioned
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Conflict, Invalid, NotFound
from dropyard.settings import Settings

STATUSES = ("active", "paused", "archived")
# Details that change where data goes or who it trusts are fixed after creation; the rest
# (schedule, pattern, formats...) can be edited.
FIXED_DETAILS = frozenset({"host", "port", "folder", "plain_ftp", "plain_imap"})


@dataclass(frozen=True)
class ConnectionView:
    id: int
    account_id: int
    name: str
    folder: str
    direction: str
    data_type: str
    method: str
    methodology: str
    credential_id: int | None
    details: dict[str, Any]
    email_address: str | None
    status: str
    status_reason: str | None
    created_at: datetime
    last_active_at: datetime | None
    uri: str
    # Pull/deliver: the last transfer's error, and a host key or certificate the server
    # presented instead of the pinned one (for a user to re-approve).
    remote_error: str | None = None
    remote_error_at: datetime | None = None
    presented_fingerprint: str | None = None


@dataclass(frozen=True)
class Created:
    """A new connection, and what was provisioned for it: shown this once."""

    connection: ConnectionView
    provisioned: Provisioned | None


class ConnectionService:
    def __init__(
        self, sessions: SessionFactory, credentials: CredentialService, *, settings: Settings
    ) -> None:
        self._sessions = sessions
        self._credentials = credentials
        self._settings = settings

    # -- the wizard ---------------------------------------------------------------------

    def wizard_context(self, actor: Actor, *, account: str | int) -> wizard.WizardContext:
        with self._sessions() as session:
            owner = find_account(session, account)
            actor.require_account(owner.id, what="account")
            return self._context(session, owner.id)

    def _context(self, session: Session, account_id: int) -> wizard.WizardContext:
        usable = self._credentials.usable(session, account_id=account_id)
        names = session.scalars(select(Connection.name).where(Connection.account_id == account_id))
        return wizard.WizardContext(
            credentials={cid: view.kind for cid, view in usable.items()},
            logins={
                cid: login for cid, view in usable.items() if (login := view.login or view.username)
            },
            taken_names=frozenset(names),
            public_host=self._settings.public_host,
            sftp_port=self._settings.sftp_port,
            ftp_port=self._settings.ftp_port,
            mail_domain=self._settings.mail_domain,
        )

    def create(
        self,
        actor: Actor,
        *,
        account: str | int,
        state: wizard.WizardState,
        pin: str | None = None,
    ) -> Created:
        """Create what a wizard at its review step describes; nothing is written on error.

        `pin`: the partner's host key (SFTP) or certificate (FTPS) fingerprint the review
        showed, pinned when the details name none. Checking that the server still presents
        it is the caller's: this service does no network I/O."""
        actor.require_role("admin")
        with transaction(self._sessions) as session:
            owner = find_account(session, account)
            actor.require_account(owner.id, what="account")
            ctx = self._context(session, owner.id)
            wizard.review(state, ctx)  # re-checks the whole state against today's account
            spec = wizard.complete(state)
            details = _pinned(spec, pin)
            provisioned: Provisioned | None = None
            credential_id: int | None = None
            choice = spec.credential
            if isinstance(choice, wizard.NewCredential):
                provisioned = self._credentials.create_in(
                    session,
                    actor,
                    account_id=owner.id,
                    spec=NewCredentialInput(
                        kind=choice.kind,
                        name=choice.name,
                        public_key=choice.public_key,
                        username=choice.username,
                        password=choice.password,
                    ),
                )
                credential_id = provisioned.credential.id
            elif isinstance(choice, wizard.ExistingCredential):
                credential_id = choice.id
            connection = Connection(
                account_id=owner.id,
                name=spec.name,
                folder=spec.folder,
                direction=spec.direction,
                data_type=spec.data_type,
                method=spec.method,
                methodology=spec.methodology,
                credential_id=credential_id,
                details=details,
            )
            if spec.method == "email" and spec.methodology == "push":
                connection.email_address = self._new_address(session, spec.folder)
            session.add(connection)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="connection.create",
                target=f"connection:{connection.id}",
                account_id=owner.id,
                detail={
                    "name": spec.name,
                    "direction": spec.direction,
                    "method": spec.method,
                    "methodology": spec.methodology,
                },
            )
            return Created(connection=self._view(session, connection), provisioned=provisioned)

    def _new_address(self, session: Session, folder: str) -> str:
        slug = wizard.address_slug(folder)
        for _ in range(20):
            address = f"{slug}-{secrets.token_hex(4)}@{self._settings.mail_domain}"
            taken = session.scalar(select(Connection.id).where(Connection.email_address == address))
            if taken is None:
                return address
        raise Conflict("could not generate a unique address; try again")

    # -- read ---------------------------------------------------------------------------

    def list_connections(
        self,
        actor: Actor,
        *,
        account: str | int | None = None,
        status: str | None = None,
        data_type: str | None = None,
    ) -> list[ConnectionView]:
        with self._sessions() as session:
            query = select(Connection).order_by(Connection.id)
            if account is not None:
                owner = find_account(session, account)
                actor.require_account(owner.id, what="account")
                query = query.where(Connection.account_id == owner.id)
            elif not actor.is_operator:
                query = query.where(Connection.account_id == actor.account_id)
            if status is not None:
                query = query.where(Connection.status == status)
            if data_type is not None:
                query = query.where(Connection.data_type == data_type)
            return [self._view(session, c) for c in session.scalars(query)]

    def get(self, actor: Actor, connection_id: int) -> ConnectionView:
        with self._sessions() as session:
            return self._view(session, self._own(session, actor, connection_id))

    def for_credential(self, credential_id: int) -> list[ConnectionView]:
        """The active connections a hosted login reaches (its virtual root's folders)."""
        with self._sessions() as session:
            query = (
                select(Connection)
                .where(Connection.credential_id == credential_id, Connection.status == "active")
                .order_by(Connection.folder)
            )
            return [self._view(session, c) for c in session.scalars(query)]

    def by_email_address(self, address: str) -> ConnectionView | None:
        with self._sessions() as session:
            connection = session.scalar(
                select(Connection).where(func.lower(Connection.email_address) == address.lower())
            )
            return None if connection is None else self._view(session, connection)

    # -- change -------------------------------------------------------------------------

    def set_status(
        self, actor: Actor, connection_id: int, *, status: str, reason: str | None = None
    ) -> ConnectionView:
        actor.require_role("admin")
        if status not in STATUSES:
            raise Invalid(f"status '{status}' must be one of {', '.join(STATUSES)}", field="status")
        with transaction(self._sessions) as session:
            connection = self._own(session, actor, connection_id)
            if connection.status == "archived" and status != "archived":
                raise Conflict("an archived connection stays archived; create a new one")
            old = connection.status
            connection.status = status
            connection.status_reason = reason
            connection.updated_at = utcnow()
            audit.record(
                session,
                actor=actor,
                action=f"connection.{status}",
                target=f"connection:{connection.id}",
                account_id=connection.account_id,
                detail={"from": old, "to": status},
            )
            return self._view(session, connection)

    def pause(self, actor: Actor, connection_id: int) -> ConnectionView:
        return self.set_status(actor, connection_id, status="paused")

    def resume(self, actor: Actor, connection_id: int) -> ConnectionView:
        return self.set_status(actor, connection_id, status="active")

    def archive(self, actor: Actor, connection_id: int) -> ConnectionView:
        return self.set_status(actor, connection_id, status="archived")

    def update_details(
        self, actor: Actor, connection_id: int, *, changes: Mapping[str, Any]
    ) -> ConnectionView:
        actor.require_role("admin")
        fixed = sorted(FIXED_DETAILS & set(changes))
        if fixed:
            raise Invalid.of(
                {
                    name: f"{name} cannot change after creation; create a new connection"
                    for name in fixed
                }
            )
        with transaction(self._sessions) as session:
            connection = self._own(session, actor, connection_id)
            merged = {**connection.details, **changes}
            connection.details = validate_details(
                connection.direction,
                connection.methodology,
                connection.method,
                connection.data_type,
                merged,
            )
            connection.updated_at = utcnow()
            audit.record(
                session,
                actor=actor,
                action="connection.edit",
                target=f"connection:{connection.id}",
                account_id=connection.account_id,
                detail={"fields": sorted(changes)},
            )
            return self._view(session, connection)

    def set_credential(
        self, actor: Actor, connection_id: int, *, credential_id: int
    ) -> ConnectionView:
        actor.require_role("admin")
        with transaction(self._sessions) as session:
            connection = self._own(session, actor, connection_id)
            credential = session.get(Credential, credential_id)
            if credential is None or credential.account_id != connection.account_id:
                raise NotFound(f"credential {credential_id} not found", field="credential")
            allowed = credential_kinds_for(connection.methodology, connection.method)  # type: ignore[arg-type]
            if credential.kind not in allowed or credential.revoked_at is not None:
                raise Invalid(
                    f"credential '{credential.name}' ({credential.kind}) cannot serve "
                    "this connection",
                    field="credential",
                )
            connection.credential_id = credential.id
            connection.updated_at = utcnow()
            audit.record(
                session,
                actor=actor,
                action="connection.credential",
                target=f"connection:{connection.id}",
                account_id=connection.account_id,
                detail={"credential": credential.id},
            )
            return self._view(session, connection)

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _own(session: Session, actor: Actor, connection_id: int) -> Connection:
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise NotFound(f"connection {connection_id} not found")
        actor.require_account(connection.account_id, what=f"connection {connection_id}")
        return connection

    def _view(self, session: Session, connection: Connection) -> ConnectionView:
        login: str | None = None
        if connection.credential_id is not None:
            credential = session.get(Credential, connection.credential_id)
            login = credential.login or credential.username if credential else None
        return ConnectionView(
            id=connection.id,
            account_id=connection.account_id,
            name=connection.name,
            folder=connection.folder,
            direction=connection.direction,
            data_type=connection.data_type,
            method=connection.method,
            methodology=connection.methodology,
            credential_id=connection.credential_id,
            details=dict(connection.details),
            email_address=connection.email_address,
            status=connection.status,
            status_reason=connection.status_reason,
            created_at=connection.created_at,
            last_active_at=connection.last_active_at,
            remote_error=connection.remote_error,
            remote_error_at=connection.remote_error_at,
            presented_fingerprint=connection.presented_fingerprint,
            uri=wizard.connection_uri(
                method=connection.method,
                methodology=connection.methodology,
                folder=connection.folder,
                details=connection.details,
                login=login,
                email_address=connection.email_address,
                public_host=self._settings.public_host,
                sftp_port=self._settings.sftp_port,
                ftp_port=self._settings.ftp_port,
            ),
        )


def _pinned(spec: wizard.ConnectionSpec, pin: str | None) -> dict[str, Any]:
    """The details to store: `pin` written into the fingerprint detail when there is none.
    A pin that contradicts a typed fingerprint, or a method without one, is refused."""
    details = dict(spec.details)
    if pin is None or not pin.strip():
        return details
    key = pin_detail(spec.method, spec.methodology, details)
    if key is None:
        raise Invalid(
            f"an {spec.method} {spec.methodology} connection has no host key or certificate to pin",
            field="pin",
        )
    try:
        checked = validate_details(
            spec.direction,
            spec.methodology,
            spec.method,
            spec.data_type,
            {**details, key: pin},
        )
    except Invalid as exc:
        raise Invalid(exc.errors.get(key, exc.message), field="pin") from None
    typed = details.get(key)
    if typed is not None and typed != checked[key]:
        raise Invalid(
            f"pin {checked[key]} differs from the {key} detail {typed}; send one of them",
            field="pin",
        )
    return checked
