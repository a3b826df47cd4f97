"""Accounts, users, tokens and the audit log through the service."""

from __future__ import annotations

import pytest

from dropyard.accounts.actors import Actor, operator
from dropyard.app import Dropyard
from dropyard.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated

OP = operator("tests")


def test_users_log_in_with_their_password_only(app: Dropyard) -> None:
    account = app.accounts.create_account(OP, name="Acme", kind="brand")
    made = app.accounts.create_user(OP, account=account.id, email="Ann@Acme.test", role="admin")
    assert made.password and len(made.password) >= 24
    actor = app.accounts.authenticate_user(
        email="ann@acme.test", password=made.password, source="127.0.0.1"
    )
    assert actor.account_id == account.id and actor.role == "admin"
    with pytest.raises(Unauthenticated) as wrong:
        app.accounts.authenticate_user(email="ann@acme.test", password="x" * 30, source="a")
    with pytest.raises(Unauthenticated) as unknown:
        app.accounts.authenticate_user(email="who@acme.test", password="x" * 30, source="a")
    assert str(wrong.value) == str(unknown.value)


def test_tokens_are_shown_once_and_checked_by_hash(app: Dropyard) -> None:
    account = app.accounts.create_account(OP, name="Acme", kind="brand")
    made = app.accounts.create_token(OP, account="acme", name="ci", role="member")
    actor = app.accounts.authenticate_token(made.secret, source="test")
    assert (actor.account_id, actor.role) == (account.id, "member")
    assert made.token.secret_hash not in made.secret
    tampered = made.secret[:-2] + ("AA" if not made.secret.endswith("AA") else "BB")
    with pytest.raises(Unauthenticated):
        app.accounts.authenticate_token(tampered, source="test")
    app.accounts.revoke_token(OP, made.token.id)
    with pytest.raises(Unauthenticated):
        app.accounts.authenticate_token(made.secret, source="test")


def test_account_rules(app: Dropyard) -> None:
    app.accounts.create_account(OP, name="Acme", kind="brand")
    with pytest.raises(Conflict):
        app.accounts.create_account(OP, name="ACME", kind="brand")
    with pytest.raises(Invalid) as bad:
        app.accounts.create_account(OP, name="X", kind="shop", timezone="Mars/Base")
    assert set(bad.value.errors) == {"kind", "timezone"}
    with pytest.raises(NotFound):
        app.accounts.get_account(OP, "nobody")
    member = Actor(kind="token", name="t", account_id=1, role="member")
    with pytest.raises(Forbidden):
        app.accounts.create_account(member, name="Other", kind="brand")


def test_changes_are_audited(app: Dropyard) -> None:
    account = app.accounts.create_account(OP, name="Acme", kind="brand")
    made = app.accounts.create_user(OP, account=account.id, email="a@acme.test", role="admin")
    events = app.audit.recent(account_id=account.id)
    assert [e.action for e in reversed(events)] == ["account.create", "user.create"]
    assert all(made.password not in repr(e.detail) for e in events if made.password)
    assert events[0].actor == "operator:operator"
