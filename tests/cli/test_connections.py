"""`dropyard connections create` drives the one wizard: every refusal exits 2, names the
flag at fault and writes nothing; every combination works from flags; on a terminal the
wizard's steps are asked, errors shown and asked again."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dropyard.app import Dropyard
from dropyard.credentials.service import NewCredentialInput
from tests.cli.conftest import Cli
from tests.support import OPERATOR, walk_wizard

NEW = ("connections", "create", "--account", "Acme", "--name", "New one")
INBOUND = ("--direction", "inbound", "--data-type", "conversions")
PULL = (*INBOUND, "--method", "sftp", "--methodology", "pull")


@pytest.fixture
def acme(app: Dropyard) -> int:
    """An account with a hosted password credential and one connection using it."""
    account = app.accounts.create_account(OPERATOR, name="Acme", kind="brand")
    login = app.credentials.create(
        OPERATOR, account="Acme", spec=NewCredentialInput(kind="hosted_password", name="login")
    )
    walk_wizard(app, OPERATOR, account=account.id, name="Acme conversions",
                direction="inbound", data_type="conversions", method="sftp",
                methodology="push", credential={"credential_id": login.credential.id})  # fmt: skip
    return login.credential.id


def public_key_file(tmp_path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    path = tmp_path / "laptop.pub"
    path.write_bytes(key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH) + b" laptop\n")
    return path


def test_refusals_name_the_flag_and_write_nothing(
    cli: Cli, app: Dropyard, acme: int, tmp_path: Path
) -> None:
    before = [c.id for c in app.credentials.list_credentials(OPERATOR)]

    error = cli.refused(*NEW, "--direction", "outbound", "--data-type", "reports",
                        "--method", "sftp", "--methodology", "pull",
                        "--new-credential-kind", "key-pair", "--username", "bob")  # fmt: skip
    assert list(error["errors"]) == ["methodology"]
    assert "'pull' is not offered for outbound" in error["message"]
    assert "--methodology" in error["message"]

    error = cli.refused(*NEW, "--direction", "outbound", "--data-type", "reports",
                        "--method", "email", "--methodology", "hosted")  # fmt: skip
    assert list(error["errors"]) == ["methodology"]
    assert "email cannot be hosted" in error["errors"]["methodology"]

    secret = "their-Secret-9f3a"
    refused = cli.run(*NEW, *PULL, "--folder", "/out", "--file-pattern", "*.csv",
                      "--new-credential-kind", "password", "--username", "bob",
                      "--password-stdin", "--json", stdin=secret + "\n", code=2)  # fmt: skip
    assert refused.error()["errors"] == {"details.host": "host is required"}
    assert "(--host)" in refused.error()["message"]
    assert secret not in refused.stdout + refused.stderr

    bad_key = tmp_path / "bad.pub"
    bad_key.write_text("ssh-ed25519 this-is-not-base64 me@laptop\n")
    error = cli.refused(*NEW, *INBOUND, "--new-credential-kind", "public-key",
                        "--public-key-file", str(bad_key))  # fmt: skip
    assert list(error["errors"]) == ["new.public_key"]
    assert "--public-key-file" in error["message"]

    error = cli.refused("connections", "create", "--account", "Acme", "--name", "Cron", *PULL,
                        "--host", "sftp.partner.example", "--folder", "/out",
                        "--file-pattern", "*", "--schedule", "61 * * * *",
                        "--new-credential-kind", "key-pair", "--username", "bob")  # fmt: skip
    assert list(error["errors"]) == ["details.schedule"]
    assert "'61 * * * *' is not a preset or a valid cron expression" in error["message"]

    error = cli.refused("connections", "create", "--account", "Nope", "--name", "X", *INBOUND,
                        "--credential", str(acme))  # fmt: skip
    assert error["error"] == "not_found"
    assert list(error["errors"]) == ["account"]

    error = cli.refused("connections", "create", "--account", "Acme", "--name", "Half done")
    assert set(error["errors"]) == {"direction", "data_type", "credential"}
    assert "--direction" in error["message"]
    assert "--data-type" in error["message"]
    assert "not a terminal" in error["message"]

    # Without --json: one readable line on stderr, nothing on stdout, still exit 2.
    duplicate = cli.run("connections", "create", "--account", "Acme",
                        "--name", "ACME Conversions", *INBOUND, "--credential", str(acme),
                        code=2)  # fmt: skip
    assert duplicate.stdout == ""
    assert duplicate.stderr.startswith("error: a connection named 'ACME Conversions' already")
    assert "(--name)" in duplicate.stderr

    listed = cli.json("connections", "list", "--account", "Acme")
    assert [c["name"] for c in listed] == ["Acme conversions"]
    assert [c.id for c in app.credentials.list_credentials(OPERATOR)] == before


def test_every_kind_of_connection_from_flags(
    cli: Cli, app: Dropyard, acme: int, tmp_path: Path
) -> None:
    pull = cli.json("connections", "create", "--account", "Acme", "--name", "Partner pull",
                    *PULL, "--host", "SFTP.Partner.example", "--port", "2200",
                    "--folder", "/out/", "--file-pattern", "*.csv", "--delete-after-pull",
                    "--result-folder", "/results", "--schedule", "every_2_hours",
                    "--timezone", "Europe/Paris", "--stable-seconds", "60",
                    "--allow-extra-columns", "--new-credential-kind", "key-pair",
                    "--new-credential-name", "our key", "--username", "bob")  # fmt: skip
    assert pull["details"] == {
        "host": "sftp.partner.example",
        "port": 2200,
        "folder": "/out",
        "file_pattern": "*.csv",
        "delete_after_pull": True,
        "result_folder": "/results",
        "host_key_fingerprint": None,
        "schedule": "every_2_hours",
        "timezone": "Europe/Paris",
        "stable_seconds": 60,
        "allow_extra_columns": True,
    }
    assert pull["uri"] == "sftp://bob@sftp.partner.example:2200/out"
    credential = pull["credential"]
    assert credential["kind"] == "remote_key_pair"
    assert credential["name"] == "our key"
    assert credential["username"] == "bob"
    assert credential["password"] is None
    assert credential["public_key"].startswith("ssh-ed25519 ")
    assert app.credentials.remote_secret(credential["id"]).private_key

    mail = cli.json("connections", "create", "--account", "Acme", "--name", "Mail drop",
                    *INBOUND, "--method", "email", "--methodology", "push",
                    "--file-pattern", "*.csv", "--return-email", "ops@acme.example",
                    "--allowed-senders", "a@partner.example, @partner.example")  # fmt: skip
    assert mail["email_address"].endswith("@dropyard.localhost")
    assert mail["uri"] == f"mailto:{mail['email_address']}"
    assert mail["credential"] is None
    assert mail["credential_id"] is None
    assert mail["details"]["allowed_senders"] == ["a@partner.example", "@partner.example"]

    key = public_key_file(tmp_path)
    hosted = cli.run("connections", "create", "--account", "Acme", "--name", "Daily reports",
                     "--direction", "outbound", "--data-type", "reports",
                     "--method", "sftp", "--methodology", "hosted", "--report",
                     "action_listing", "--format", "tsv", "--compression", "gzip",
                     "--no-send-empty", "--retention-days", "7",
                     "--new-credential-kind", "public-key",
                     "--public-key-file", str(key))  # fmt: skip
    # Human output: the review, then what was created.
    review, _, created = hosted.stdout.partition("Connection #")
    assert "Review" in review
    assert "Methodology: Pull from Dropyard" in review
    assert "Report: action_listing" in review
    assert "created." in created
    view = app.connections.list_connections(OPERATOR, account="Acme", data_type="reports")[0]
    assert view.details["format"] == "tsv"
    assert view.details["send_empty"] is False
    assert view.details["retention_days"] == 7
    assert app.credentials.get(OPERATOR, view.credential_id or 0).kind == "hosted_public_key"


def test_the_wizard_on_a_terminal(cli: Cli, app: Dropyard, acme: int) -> None:
    code, screen = cli.dialog(
        ["connections", "create", "--account", "Acme"],
        [
            ("Connection name", "acme conversions"),
            ("Direction [inbound/outbound]", "inbound"),
            ("already exists", None),  # the wizard refused the name: asked again
            ("Connection name (acme conversions)", "Pty drop"),
            ("Direction [inbound/outbound] (inbound)", ""),
            ("Data type [", "clicks"),
            ("Method [sftp/ftp/email] (sftp)", ""),
            ("Methodology [push/pull] (push)", ""),
            ("Change these settings?", "y"),
            ("File pattern (*)", "bad/name"),
            ("Allow extra columns", ""),
            ("must not contain '/'", None),  # a refused detail: the method step again
            ("Method [sftp/ftp/email]", ""),
            ("Methodology [push/pull]", ""),
            ("Change these settings?", "y"),
            ("File pattern (bad/name)", "*.csv"),
            ("Allow extra columns", ""),
            ("Credential [", ""),
            ("Kind [hosted_password/hosted_public_key] (hosted_password)", ""),
            ("Credential name (Pty drop)", "pty login"),
            ("Create this connection? [yes/back/no] (yes)", "back"),
            ("Credential [", str(acme)),
            ("Create this connection?", "yes"),
        ],
    )
    assert code == 0, screen
    assert "Connection #" in screen
    assert "Pty drop' created." in screen
    view = app.connections.list_connections(OPERATOR, account="Acme", data_type="clicks")[0]
    assert view.name == "Pty drop"
    assert view.details["file_pattern"] == "*.csv"
    assert view.credential_id == acme
    # Going back replaced the new credential: none was created.
    assert [c.name for c in app.credentials.list_credentials(OPERATOR)] == ["login"]
