"""Credentials through the service: secrets stored only hashed or sealed, rotation, scope."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import text

from dropyard.accounts.actors import Actor, operator
from dropyard.app import Dropyard
from dropyard.credentials.service import NewCredentialInput
from dropyard.errors import Invalid, NotFound

OP = operator("tests")


def _account(app: Dropyard, name: str = "Acme") -> int:
    return app.accounts.create_account(OP, name=name, kind="brand").id


def _dump(app: Dropyard) -> str:
    """Everything the database holds about credentials, as text."""
    with app.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM credential_secrets")).all()
        rows += connection.execute(text("SELECT * FROM credentials")).all()
        rows += connection.execute(text("SELECT * FROM audit_events")).all()
    return repr(rows)


def test_hosted_password_is_generated_shown_once_and_stored_hashed(app: Dropyard) -> None:
    account = _account(app)
    made = app.credentials.create(
        OP, account=account, spec=NewCredentialInput(kind="hosted_password", name="uploads")
    )
    assert made.password is not None and len(made.password) >= 24
    assert made.credential.login
    assert made.password not in _dump(app)
    assert app.credentials.check_password(login=made.credential.login, password=made.password)
    assert app.credentials.check_password(login=made.credential.login, password="nope") is None
    shown_later = app.credentials.get(OP, made.credential.id)
    assert made.password not in repr(shown_later)


def test_remote_password_is_sealed_and_never_logged(
    app: Dropyard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = _account(app)
    secret = "their-s3cret-Passw0rd!"
    made = app.credentials.create(
        OP,
        account=account,
        spec=NewCredentialInput(
            kind="remote_password", name="their server", username="bob", password=secret
        ),
    )
    assert made.password is None
    assert secret not in _dump(app)
    assert secret.encode() not in _raw_bytes(app)
    assert secret not in caplog.text
    assert app.credentials.remote_secret(made.credential.id).password == secret


def _raw_bytes(app: Dropyard) -> bytes:
    with app.engine.connect() as connection:
        values = connection.execute(text("SELECT sealed_secret FROM credential_secrets")).all()
    return b"".join(bytes(v[0]) for v in values if v[0] is not None)


def test_remote_key_pair_shows_the_public_key_and_seals_the_private_one(app: Dropyard) -> None:
    account = _account(app)
    made = app.credentials.create(
        OP,
        account=account,
        spec=NewCredentialInput(kind="remote_key_pair", name="our key", username="bob"),
    )
    assert made.credential.public_key and made.credential.public_key.startswith("ssh-ed25519 ")
    private = app.credentials.remote_secret(made.credential.id).private_key
    assert private and "PRIVATE KEY" in private
    assert "PRIVATE KEY" not in _dump(app)


def test_rotation_keeps_the_old_password_during_the_overlap(app: Dropyard) -> None:
    account = _account(app)
    made = app.credentials.create(
        OP, account=account, spec=NewCredentialInput(kind="hosted_password", name="uploads")
    )
    login = made.credential.login or ""
    rotated = app.credentials.rotate(OP, made.credential.id)
    assert rotated.password and rotated.password != made.password
    assert app.credentials.check_password(login=login, password=made.password or "")
    assert app.credentials.check_password(login=login, password=rotated.password)
    again = app.credentials.rotate(OP, made.credential.id, overlap=timedelta(0))
    assert app.credentials.check_password(login=login, password=rotated.password) is None
    assert app.credentials.check_password(login=login, password=again.password or "")


def test_revoked_credential_no_longer_logs_in(app: Dropyard) -> None:
    account = _account(app)
    made = app.credentials.create(
        OP, account=account, spec=NewCredentialInput(kind="hosted_password", name="uploads")
    )
    app.credentials.revoke(OP, made.credential.id)
    found = app.credentials.check_password(
        login=made.credential.login or "", password=made.password or ""
    )
    assert found is None


def test_another_accounts_credential_does_not_exist(app: Dropyard) -> None:
    mine, theirs = _account(app, "Mine"), _account(app, "Theirs")
    made = app.credentials.create(
        OP, account=theirs, spec=NewCredentialInput(kind="hosted_password", name="x")
    )
    me = Actor(kind="token", name="t", account_id=mine, role="admin")
    with pytest.raises(NotFound):
        app.credentials.get(me, made.credential.id)
    with pytest.raises(NotFound):
        app.credentials.revoke(me, made.credential.id)
    assert app.credentials.list_credentials(me) == []


def test_bad_public_key_writes_nothing(app: Dropyard) -> None:
    account = _account(app)
    with pytest.raises(Invalid) as refused:
        app.credentials.create(
            OP,
            account=account,
            spec=NewCredentialInput(
                kind="hosted_public_key", name="k", public_key="ssh-dss AAAAB3NzaC1kc3MAAACBAP"
            ),
        )
    assert "public_key" in refused.value.errors
    assert app.credentials.list_credentials(OP, account=account) == []
