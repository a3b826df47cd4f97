"""`dropyard credentials`: generated secrets shown once, rotation with and without an
overlap, revocation, remote secrets read from stdin and never echoed, public keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropyard.app import Dropyard
from tests.cli.conftest import Cli
from tests.cli.test_connections import public_key_file
from tests.support import OPERATOR


@pytest.fixture
def acme(app: Dropyard) -> int:
    return app.accounts.create_account(OPERATOR, name="Acme", kind="brand").id


def test_hosted_password_rotate_rename_revoke(cli: Cli, app: Dropyard, acme: int) -> None:
    def works(password: str) -> bool:
        return app.credentials.check_password(login=login, password=password) is not None

    created = cli.json("credentials", "create", "--account", "Acme", "--name", "uploads",
                       "--kind", "password")  # fmt: skip
    ident, login, first = str(created["id"]), created["username"], created["password"]
    assert created["kind"] == "hosted_password"
    assert created["status"] == "active"

    rotated = cli.json("credentials", "rotate", ident)
    second = rotated["password"]
    assert second not in (None, first)
    assert rotated["username"] == login
    assert works(first)  # the overlap window: both work
    assert works(second)

    third = cli.json("credentials", "rotate", ident, "--overlap-hours", "0")["password"]
    assert works(third)
    assert not works(second)
    assert not works(first)

    renamed = cli.json("credentials", "rename", ident, "--name", "Uploads 2026")
    assert renamed["name"] == "Uploads 2026"
    assert renamed["username"] == login  # the login never changes

    shown = cli.run("credentials", "show", ident)
    assert "Uploads 2026" in shown.stdout
    assert login in shown.stdout
    listed = cli.run("credentials", "list", "--account", "Acme", "--json")
    assert [c["id"] for c in listed.json()] == [created["id"]]
    assert "password" not in listed.json()[0]
    for secret in (first, second, third):
        assert secret not in shown.stdout + shown.stderr + listed.stdout

    revoked = cli.json("credentials", "revoke", ident)
    assert revoked["status"] == "revoked"
    assert revoked["revoked_at"]
    assert not works(third)


def test_remote_secrets_and_public_keys(cli: Cli, app: Dropyard, acme: int, tmp_path: Path) -> None:
    secret = "partner-Pa55word-7x"
    remote = cli.run("credentials", "create", "--account", str(acme), "--name", "their server",
                     "--kind", "password", "--for", "remote", "--username", "bob",
                     "--password-stdin", "--json", stdin=secret + "\n")  # fmt: skip
    answer = remote.json()
    assert answer["kind"] == "remote_password"
    assert answer["username"] == "bob"
    assert answer["password"] is None
    assert secret not in remote.stdout + remote.stderr
    assert app.credentials.remote_secret(answer["id"]).password == secret

    changed = "partner-NewPa55-8y"
    rotated = cli.run("credentials", "rotate", str(answer["id"]), "--password-stdin",
                      stdin=changed)  # fmt: skip
    assert "rotated" in rotated.stdout
    assert changed not in rotated.stdout + rotated.stderr
    assert app.credentials.remote_secret(answer["id"]).password == changed

    pair = cli.run("credentials", "create", "--account", "Acme", "--name", "our key",
                   "--kind", "key-pair", "--for", "remote", "--username", "bob")  # fmt: skip
    view = app.credentials.list_credentials(OPERATOR, account="Acme")[-1]
    assert view.kind == "remote_key_pair"
    assert view.public_key is not None
    assert view.public_key in pair.stdout  # the line to install, unwrapped
    assert "PRIVATE KEY" not in pair.stdout + pair.stderr

    key = public_key_file(tmp_path)
    laptop = cli.json("credentials", "create", "--account", "Acme", "--name", "laptop",
                      "--kind", "public-key", "--public-key-file", str(key))  # fmt: skip
    assert laptop["kind"] == "hosted_public_key"
    assert laptop["fingerprints"][0].startswith("SHA256:")
    assert app.credentials.check_public_key(
        login=laptop["username"], openssh_key=key.read_text().strip()
    )

    bad = tmp_path / "bad.pub"
    bad.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
    error = cli.refused("credentials", "create", "--account", "Acme", "--name", "oops",
                        "--kind", "public-key", "--public-key-file", str(bad))  # fmt: skip
    assert list(error["errors"]) == ["public_key"]
    assert "private key" in error["message"]
    assert "--public-key-file" in error["message"]

    error = cli.refused("credentials", "create", "--account", "Acme", "--name", "nope",
                        "--kind", "key-pair")  # fmt: skip
    assert list(error["errors"]) == ["kind"]
    assert "(--kind)" in error["message"]
    names = [c.name for c in app.credentials.list_credentials(OPERATOR, account="Acme")]
    assert names == ["their server", "our key", "laptop"]
