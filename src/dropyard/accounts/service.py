"""Accounts, users and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dropyard.accounts import audit
from dropyard.accounts.actors import Actor
from dropyard.accounts.models import ACCOUNT_KINDS, ROLES, Account, ApiToken, User
from dropyard.credentials.passwords import (
    dummy_verify,
    generate_password,
    hash_password,
    verify_password,
)
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Conflict, Invalid, NotFound, Unauthenticated

_TOKEN = re.compile(r"^dy_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True)
class NewUser:
    user: User
    password: str | None  # set when Dropyard generated it: shown once


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the whole bearer value, shown once


def find_account(session: Session, ref: str | int) -> Account:
    """An account by id or by name (case-insensitive)."""
    text = str(ref).strip()
    account: Account | None = None
    if text.isdigit():
        account = session.get(Account, int(text))
    if account is None:
        account = session.scalar(select(Account).where(func.lower(Account.name) == text.lower()))
    if account is None:
        raise NotFound(f"account '{text}' does not exist", field="account")
    return account


class AccountService:
    """Creates and finds tenants, their users and tokens; authenticates users and tokens."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    # -- accounts -----------------------------------------------------------------------

    def create_account(
        self, actor: Actor, *, name: str, kind: str, timezone: str = "UTC"
    ) -> Account:
        actor.require_operator()
        name = name.strip()
        errors: dict[str, str] = {}
        if not 1 <= len(name) <= 100 or name.isdigit():
            errors["name"] = f"name '{name[:100]}' must be 1-100 characters and not only digits"
        if kind not in ACCOUNT_KINDS:
            errors["kind"] = f"kind '{kind}' must be one of {', '.join(ACCOUNT_KINDS)}"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"timezone '{timezone}' is not a known time zone"
        if errors:
            raise Invalid.of(errors)
        with transaction(self._sessions) as session:
            taken = session.scalar(
                select(Account.id).where(func.lower(Account.name) == name.lower())
            )
            if taken is not None:
                raise Conflict(f"an account named '{name}' already exists", field="name")
            account = Account(name=name, kind=kind, timezone=timezone)
            session.add(account)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="account.create",
                target=f"account:{account.id}",
                account_id=account.id,
                detail={"name": name, "kind": kind},
            )
            return account

    def list_accounts(self, actor: Actor) -> list[Account]:
        with self._sessions() as session:
            query = select(Account).order_by(Account.id)
            if not actor.is_operator:
                query = query.where(Account.id == actor.account_id)
            return list(session.scalars(query))

    def get_account(self, actor: Actor, ref: str | int) -> Account:
        with self._sessions() as session:
            account = find_account(session, ref)
            actor.require_account(account.id, what="account")
            return account

    # -- users --------------------------------------------------------------------------

    def create_user(
        self,
        actor: Actor,
        *,
        account: str | int,
        email: str,
        role: str = "member",
        password: str | None = None,
    ) -> NewUser:
        actor.require_role("admin")
        email = email.strip().lower()
        errors: dict[str, str] = {}
        if not 3 <= len(email) <= 254 or any(c.isspace() for c in email):
            errors["email"] = f"email '{email[:100]}' is not a valid login"
        if role not in ROLES:
            errors["role"] = f"role '{role}' must be one of {', '.join(ROLES)}"
        if password is not None and len(password) < 12:
            errors["password"] = "password must have at least 12 characters"  # noqa: S105
        if errors:
            raise Invalid.of(errors)
        generated = generate_password() if password is None else None
        with transaction(self._sessions) as session:
            owner = find_account(session, account)
            actor.require_account(owner.id, what="account")
            if session.scalar(select(User.id).where(User.email == email)) is not None:
                raise Conflict(f"a user '{email}' already exists", field="email")
            user = User(
                account_id=owner.id,
                email=email,
                role=role,
                password_hash=hash_password(password or generated or ""),
            )
            session.add(user)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="user.create",
                target=f"user:{user.id}",
                account_id=owner.id,
                detail={"email": email, "role": role},
            )
            return NewUser(user=user, password=generated)

    def list_users(self, actor: Actor, *, account: str | int) -> list[User]:
        with self._sessions() as session:
            owner = find_account(session, account)
            actor.require_account(owner.id, what="account")
            query = select(User).where(User.account_id == owner.id).order_by(User.id)
            return list(session.scalars(query))

    def count_users(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(func.count(User.id))) or 0)

    def authenticate_user(self, *, email: str, password: str, source: str) -> Actor:
        """The same answer, in about the same time, for an unknown user and a wrong password."""
        with transaction(self._sessions) as session:
            user = session.scalar(select(User).where(User.email == email.strip().lower()))
            if user is None or user.disabled_at is not None:
                dummy_verify(password)
                ok = False
            else:
                ok = verify_password(user.password_hash, password)
            actor = Actor(
                kind="user",
                name=user.email if user else email[:100],
                account_id=user.account_id if user else None,
                role=user.role if user else "viewer",
                source=source,
            )
            audit.record(
                session,
                actor=actor,
                action="login.success" if ok else "login.failure",
                target="web",
                detail={"protocol": "web"},
            )
            if not ok or user is None:
                raise Unauthenticated("wrong email or password")
            return actor

    # -- tokens -------------------------------------------------------------------------

    def create_token(
        self, actor: Actor, *, account: str | int, name: str, role: str = "admin"
    ) -> NewToken:
        actor.require_role("admin")
        if role not in ROLES:
            raise Invalid(f"role '{role}' must be one of {', '.join(ROLES)}", field="role")
        if not 1 <= len(name.strip()) <= 100:
            raise Invalid("name must be 1-100 characters", field="name")
        prefix = "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(12))
        secret_part = secrets.token_urlsafe(32)
        with transaction(self._sessions) as session:
            owner = find_account(session, account)
            actor.require_account(owner.id, what="account")
            token = ApiToken(
                account_id=owner.id,
                name=name.strip(),
                role=role,
                prefix=prefix,
                secret_hash=_digest(secret_part),
            )
            session.add(token)
            session.flush()
            audit.record(
                session,
                actor=actor,
                action="token.create",
                target=f"token:{token.id}",
                account_id=owner.id,
                detail={"name": token.name, "role": role},
            )
            return NewToken(token=token, secret=f"dy_{prefix}_{secret_part}")

    def authenticate_token(self, bearer: str, *, source: str) -> Actor:
        match = _TOKEN.match(bearer.strip())
        if match is None:
            raise Unauthenticated("invalid API token")
        with self._sessions() as session:
            token = session.scalar(select(ApiToken).where(ApiToken.prefix == match.group(1)))
        expected = token.secret_hash if token else _digest("")
        if (
            token is None
            or token.revoked_at is not None
            or not hmac.compare_digest(expected, _digest(match.group(2)))
        ):
            raise Unauthenticated("invalid API token")
        self._touch(token)
        return Actor(
            kind="token",
            name=f"{token.name} ({token.prefix})",
            account_id=token.account_id,
            role=token.role,
            source=source,
        )

    def _touch(self, token: ApiToken) -> None:
        """Note the token's use at most once a minute: reads stay reads."""
        now = utcnow()
        if token.last_used_at is not None and now - token.last_used_at < timedelta(minutes=1):
            return
        with transaction(self._sessions) as session:
            session.execute(
                update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
            )

    def revoke_token(self, actor: Actor, token_id: int) -> None:
        actor.require_role("admin")
        with transaction(self._sessions) as session:
            token = session.get(ApiToken, token_id)
            if token is None:
                raise NotFound("token not found")
            actor.require_account(token.account_id, what="token")
            if token.revoked_at is not None:
                return
            token.revoked_at = utcnow()
            audit.record(
                session,
                actor=actor,
                action="token.revoke",
                target=f"token:{token.id}",
                account_id=token.account_id,
            )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
