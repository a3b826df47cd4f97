"""Credentials of an account: create, list, rename, rotate, revoke, and check logins.

Hosted passwords are kept only as argon2 hashes; remote passwords and generated private
keys only sealed under the master key. A secret leaves this module once, in the result
of the call that made it, and (for remote secrets) to the remote clients that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dropyard.accounts import audit
from dropyard.accounts.actors import Actor
from dropyard.accounts.service import find_account
from dropyard.credentials.keys import fingerprint_of, generate_key_pair, parse_public_key
from dropyard.credentials.models import (
    CREDENTIAL_KINDS,
    HOSTED_KINDS,
    Credential,
    CredentialSecret,
)
from dropyard.credentials.passwords import (
    dummy_verify,
    generate_login,
    generate_password,
    hash_password,
    verify_password,
)
from dropyard.credentials.secrets import SecretBox
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Conflict, Invalid, NotFound


@dataclass(frozen=True)
class CredentialView:
    """What may be shown of a credential at any time: never a secret."""

    id: int
    account_id: int
    name: str
    kind: str
    login: str | None
    username: str | None
    fingerprints: tuple[str, ...]
    public_key: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Provisioned:
    """The answer to create and rotate: the one time a generated secret is shown."""

    credential: CredentialView
    password: str | None = None


@dataclass(frozen=True)
class HostedLogin:
    """A successful hosted login: which credential, of which account."""

    credential_id: int
    account_id: int
    login: str


@dataclass(frozen=True)
class RemoteSecret:
    """What a remote client needs to log in to a partner's server."""

    username: str
    password: str | None
    private_key: str | None


@dataclass(frozen=True)
class NewCredentialInput:
    kind: str
    name: str
    public_key: str | None = None
    username: str | None = None
    password: str | None = None


class CredentialService:
    def __init__(self, sessions: SessionFactory, box: SecretBox, *, overlap: timedelta) -> None:
        self._sessions = sessions
        self._box = box
        self._overlap = overlap

    # -- create -------------------------------------------------------------------------

    def create(self, actor: Actor, *, account: str | int, spec: NewCredentialInput) -> Provisioned:
        actor.require_role("admin")
        with transaction(self._sessions) as session:
            owner = find_account(session, account)
            actor.require_account(owner.id, what="account")
            return self.create_in(session, actor, account_id=owner.id, spec=spec)

    def create_in(
        self, session: Session, actor: Actor, *, account_id: int, spec: NewCredentialInput
    ) -> Provisioned:
        """Create inside the caller's transaction (the connection wizard uses this)."""
        name = spec.name.strip()
        errors: dict[str, str] = {}
        if not 1 <= len(name) <= 100:
            errors["name"] = "name must be 1-100 characters"
        if spec.kind not in CREDENTIAL_KINDS:
            errors["kind"] = f"kind '{spec.kind}' must be one of {', '.join(CREDENTIAL_KINDS)}"
        if spec.kind == "remote_password":
            if not spec.username or not spec.username.strip():
                errors["username"] = "the login on the partner's server is required"
            if not spec.password:
                errors["password"] = "the password on the partner's server is required"  # noqa: S105
        if spec.kind == "remote_key_pair" and (not spec.username or not spec.username.strip()):
            errors["username"] = "the login on the partner's server is required"
        if spec.kind == "hosted_public_key" and not (spec.public_key or "").strip():
            errors["public_key"] = "paste the partner's public key"
        if errors:
            raise Invalid.of(errors)
        taken = session.scalar(
            select(Credential.id).where(
                Credential.account_id == account_id, func.lower(Credential.name) == name.lower()
            )
        )
        if taken is not None:
            raise Conflict(f"a credential named '{name}' already exists", field="name")

        credential = Credential(account_id=account_id, name=name, kind=spec.kind)
        if spec.kind in HOSTED_KINDS:
            credential.login = self._unique_login(session, name)
        else:
            credential.username = (spec.username or "").strip()
        session.add(credential)
        session.flush()
        secret, shown = self._new_secret(credential, spec)
        session.add(secret)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="credential.create",
            target=f"credential:{credential.id}",
            account_id=account_id,
            detail={"name": name, "kind": spec.kind},
        )
        return Provisioned(credential=self._view(session, credential), password=shown)

    def _new_secret(
        self, credential: Credential, spec: NewCredentialInput
    ) -> tuple[CredentialSecret, str | None]:
        context = f"credential:{credential.id}"
        if credential.kind == "hosted_password":
            password = spec.password or generate_password()
            shown = None if spec.password else password
            return CredentialSecret(
                credential_id=credential.id, password_hash=hash_password(password)
            ), shown
        if credential.kind == "hosted_public_key":
            key = parse_public_key(spec.public_key or "")
            return CredentialSecret(
                credential_id=credential.id, public_key=key.openssh, fingerprint=key.fingerprint
            ), None
        if credential.kind == "remote_password":
            sealed = self._box.seal((spec.password or "").encode(), context=context)
            return CredentialSecret(credential_id=credential.id, sealed_secret=sealed), None
        pair = generate_key_pair(comment=f"dropyard-{credential.name}")
        sealed = self._box.seal(pair.private_openssh.encode(), context=context)
        return CredentialSecret(
            credential_id=credential.id,
            sealed_secret=sealed,
            public_key=pair.public_openssh,
            fingerprint=pair.fingerprint,
        ), None

    @staticmethod
    def _unique_login(session: Session, hint: str) -> str:
        for _ in range(20):
            login = generate_login(hint)
            if session.scalar(select(Credential.id).where(Credential.login == login)) is None:
                return login
        raise Conflict("could not generate a unique login; try again")

    # -- read ---------------------------------------------------------------------------

    def list_credentials(
        self, actor: Actor, *, account: str | int | None = None
    ) -> list[CredentialView]:
        with self._sessions() as session:
            query = select(Credential).order_by(Credential.id)
            if account is not None:
                owner = find_account(session, account)
                actor.require_account(owner.id, what="account")
                query = query.where(Credential.account_id == owner.id)
            elif not actor.is_operator:
                query = query.where(Credential.account_id == actor.account_id)
            return [self._view(session, c) for c in session.scalars(query)]

    def get(self, actor: Actor, credential_id: int) -> CredentialView:
        with self._sessions() as session:
            return self._view(session, self._own(session, actor, credential_id))

    def usable(self, session: Session, *, account_id: int) -> dict[int, CredentialView]:
        """The account's credentials that are not revoked, by id (for the wizard)."""
        query = select(Credential).where(
            Credential.account_id == account_id, Credential.revoked_at.is_(None)
        )
        return {c.id: self._view(session, c) for c in session.scalars(query)}

    # -- change -------------------------------------------------------------------------

    def rename(self, actor: Actor, credential_id: int, *, name: str) -> CredentialView:
        actor.require_role("admin")
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise Invalid("name must be 1-100 characters", field="name")
        with transaction(self._sessions) as session:
            credential = self._own(session, actor, credential_id)
            clash = session.scalar(
                select(Credential.id).where(
                    Credential.account_id == credential.account_id,
                    func.lower(Credential.name) == name.lower(),
                    Credential.id != credential.id,
                )
            )
            if clash is not None:
                raise Conflict(f"a credential named '{name}' already exists", field="name")
            old = credential.name
            credential.name = name
            audit.record(
                session,
                actor=actor,
                action="credential.rename",
                target=f"credential:{credential.id}",
                account_id=credential.account_id,
                detail={"from": old, "to": name},
            )
            return self._view(session, credential)

    def rotate(
        self,
        actor: Actor,
        credential_id: int,
        *,
        public_key: str | None = None,
        password: str | None = None,
        overlap: timedelta | None = None,
    ) -> Provisioned:
        """A new secret; the old ones keep working until the overlap window ends."""
        actor.require_role("admin")
        window = self._overlap if overlap is None else overlap
        with transaction(self._sessions) as session:
            credential = self._own(session, actor, credential_id)
            if credential.revoked_at is not None:
                raise Conflict("a revoked credential cannot be rotated")
            if credential.kind == "hosted_public_key" and not public_key:
                raise Invalid("paste the new public key", field="public_key")
            if credential.kind == "remote_password" and not password:
                raise Invalid("the new password is required", field="password")
            spec = NewCredentialInput(
                kind=credential.kind, name=credential.name, public_key=public_key, password=password
            )
            secret, shown = self._new_secret(credential, spec)
            ends = utcnow() + window
            for old in self._live_secrets(session, credential.id):
                if old.valid_until is None or old.valid_until > ends:
                    old.valid_until = ends
            session.add(secret)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="credential.rotate",
                target=f"credential:{credential.id}",
                account_id=credential.account_id,
                detail={"overlap_seconds": int(window.total_seconds())},
            )
            return Provisioned(credential=self._view(session, credential), password=shown)

    def revoke(self, actor: Actor, credential_id: int) -> CredentialView:
        actor.require_role("admin")
        with transaction(self._sessions) as session:
            credential = self._own(session, actor, credential_id)
            if credential.revoked_at is None:
                credential.revoked_at = utcnow()
                audit.record(
                    session,
                    actor=actor,
                    action="credential.revoke",
                    target=f"credential:{credential.id}",
                    account_id=credential.account_id,
                )
            return self._view(session, credential)

    # -- use ----------------------------------------------------------------------------

    def check_password(self, *, login: str, password: str) -> HostedLogin | None:
        """A hosted password login; the same cost for an unknown login as a wrong password."""
        with transaction(self._sessions) as session:
            credential = self._hosted(session, login, "hosted_password")
            if credential is None:
                dummy_verify(password)
                return None
            hashes = [s.password_hash for s in self._live_secrets(session, credential.id)]
            ok = any(verify_password(h, password) for h in hashes if h)
            if not hashes:
                dummy_verify(password)
            if not ok:
                return None
            credential.last_used_at = utcnow()
            return HostedLogin(credential.id, credential.account_id, credential.login or login)

    def check_public_key(self, *, login: str, openssh_key: str) -> HostedLogin | None:
        fingerprint = fingerprint_of(openssh_key)
        with transaction(self._sessions) as session:
            credential = self._hosted(session, login, "hosted_public_key")
            if credential is None:
                return None
            prints = {s.fingerprint for s in self._live_secrets(session, credential.id)}
            if fingerprint not in prints:
                return None
            credential.last_used_at = utcnow()
            return HostedLogin(credential.id, credential.account_id, credential.login or login)

    def has_login(self, login: str, kind: str) -> bool:
        with self._sessions() as session:
            return self._hosted(session, login, kind) is not None

    def remote_secret(self, credential_id: int) -> RemoteSecret:
        """For remote clients only: decrypts the newest live secret."""
        with self._sessions() as session:
            credential = session.get(Credential, credential_id)
            if credential is None or credential.kind in HOSTED_KINDS:
                raise NotFound("remote credential not found")
            if credential.revoked_at is not None:
                raise Conflict(f"credential '{credential.name}' is revoked")
            live = self._live_secrets(session, credential.id)
            if not live:
                raise Conflict(f"credential '{credential.name}' has no live secret")
            secret = live[-1]
            plain = self._box.open(
                secret.sealed_secret or b"", context=f"credential:{credential.id}"
            ).decode()
            if credential.kind == "remote_password":
                return RemoteSecret(credential.username or "", plain, None)
            return RemoteSecret(credential.username or "", None, plain)

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _hosted(session: Session, login: str, kind: str) -> Credential | None:
        return session.scalar(
            select(Credential).where(
                Credential.login == login,
                Credential.kind == kind,
                Credential.revoked_at.is_(None),
            )
        )

    @staticmethod
    def _live_secrets(session: Session, credential_id: int) -> list[CredentialSecret]:
        now = utcnow()
        query = (
            select(CredentialSecret)
            .where(
                CredentialSecret.credential_id == credential_id,
                or_(CredentialSecret.valid_until.is_(None), CredentialSecret.valid_until > now),
            )
            .order_by(CredentialSecret.id)
        )
        return list(session.scalars(query))

    @staticmethod
    def _own(session: Session, actor: Actor, credential_id: int) -> Credential:
        credential = session.get(Credential, credential_id)
        if credential is None:
            raise NotFound(f"credential {credential_id} not found")
        actor.require_account(credential.account_id, what=f"credential {credential_id}")
        return credential

    def _view(self, session: Session, credential: Credential) -> CredentialView:
        live = self._live_secrets(session, credential.id)
        return CredentialView(
            id=credential.id,
            account_id=credential.account_id,
            name=credential.name,
            kind=credential.kind,
            login=credential.login,
            username=credential.username,
            fingerprints=tuple(s.fingerprint for s in live if s.fingerprint),
            public_key=live[-1].public_key
            if live and credential.kind == "remote_key_pair"
            else None,
            created_at=credential.created_at,
            last_used_at=credential.last_used_at,
            revoked_at=credential.revoked_at,
        )
