"""The newcomer's path through the CLI, as the issue tells it: a brand account, its
campaign, a hosted password login and an inbound SFTP push connection for conversions;
a partner that joins the campaign; users and API tokens. Every answer's --json shape."""

from __future__ import annotations

from pathlib import Path

from dropyard.app import Dropyard
from tests.cli.conftest import Cli, make_cli
from tests.support import OPERATOR


def test_newcomer_flow_from_account_to_connection(cli: Cli, app: Dropyard) -> None:
    acme = cli.json("accounts", "create", "--name", "Acme", "--kind", "brand",
                    "--timezone", "Europe/Paris")  # fmt: skip
    assert acme == {
        "id": acme["id"],
        "name": "Acme",
        "kind": "brand",
        "timezone": "Europe/Paris",
        "conversion_window_days": 88,
        "created_at": acme["created_at"],
    }
    blogs = app.accounts.create_account(OPERATOR, name="Blogs", kind="partner")
    listed = cli.json("accounts", "list")
    assert listed == [acme, listed[1]]
    assert listed[1]["name"] == "Blogs"
    assert listed[1]["kind"] == "partner"

    campaign = cli.json("campaigns", "create", "--account", "Acme", "--id", "1001",
                        "--name", "Acme US", "--currency", "USD", "--payout-rate", "0.08",
                        "--tracker", "5001", "--tracker", "5002", "--lock-days", "45",
                        "--bonus-tier", "10000:100", "--bonus-tier", "5000:40")  # fmt: skip
    assert campaign == {
        "id": 1001,
        "account_id": acme["id"],
        "name": "Acme US",
        "currency": "USD",
        "payout_rate": "0.08",
        "lock_days": 45,
        "bonus_tiers": [
            {"threshold": "5000", "bonus": "40"},
            {"threshold": "10000", "bonus": "100"},
        ],
        "trackers": [5001, 5002],
        "created_at": campaign["created_at"],
    }
    # By id as well as by name; read back from the database, the same document.
    assert cli.json("campaigns", "list", "--account", str(acme["id"])) == [campaign]

    partner = cli.json("partners", "create", "--name", "Blog One", "--id", "2001",
                       "--account", "Blogs")  # fmt: skip
    assert partner == {
        "id": 2001,
        "name": "Blog One",
        "account_id": blogs.id,
        "created_at": partner["created_at"],
    }
    joined = cli.json("partners", "join", "--partner", "2001", "--campaign", "1001",
                      "--payout-rate", "0.1")  # fmt: skip
    assert joined == {
        "campaign_id": 1001,
        "partner_id": 2001,
        "payout_rate": "0.1",
        "joined_at": joined["joined_at"],
    }

    login = cli.json("credentials", "create", "--account", "Acme", "--name", "Acme uploads",
                     "--kind", "password")  # fmt: skip
    assert login["kind"] == "hosted_password"
    assert login["username"].startswith("acme-uploads-")
    assert len(login["password"]) == 32
    assert app.credentials.check_password(login=login["username"], password=login["password"])

    connection = cli.json("connections", "create", "--account", "Acme",
                          "--name", "Acme conversions", "--direction", "inbound",
                          "--data-type", "conversions", "--method", "sftp",
                          "--methodology", "push", "--credential", str(login["id"]))  # fmt: skip
    assert connection["name"] == "Acme conversions"
    assert connection["folder"] == "acme_conversions"
    assert connection["status"] == "active"
    assert connection["credential_id"] == login["id"]
    assert connection["details"] == {"file_pattern": "*", "allow_extra_columns": False}
    assert connection["uri"] == f"sftp://{login['username']}@localhost:2222/acme_conversions"
    assert connection["email_address"] is None
    assert connection["credential"] is None  # nothing was provisioned this time

    found = cli.json("connections", "list", "--account", "Acme", "--status", "active",
                     "--data-type", "conversions")  # fmt: skip
    assert [c["id"] for c in found] == [connection["id"]]

    shown = cli.run("connections", "show", str(connection["id"]))
    assert "Acme conversions" in shown.stdout
    assert connection["uri"] in shown.stdout

    assert cli.json("connections", "pause", str(connection["id"]))["status"] == "paused"
    resumed = cli.run("connections", "resume", str(connection["id"]))
    assert "resumed" in resumed.stdout
    archived = cli.json("connections", "archive", str(connection["id"]))
    assert archived["status"] == "archived"
    error = cli.refused("connections", "resume", str(connection["id"]))
    assert error == {"error": "conflict", "message": error["message"]}
    assert "archived" in error["message"]
    assert app.connections.list_connections(OPERATOR, status="archived")[0].id == archived["id"]


def test_users_and_tokens(cli: Cli, app: Dropyard) -> None:
    account = app.accounts.create_account(OPERATOR, name="Acme", kind="brand")

    generated = cli.json("users", "create", "--account", "Acme", "--email", "Ops@Acme.example",
                         "--role", "admin")  # fmt: skip
    assert generated["email"] == "ops@acme.example"
    assert generated["account_id"] == account.id
    assert generated["role"] == "admin"
    assert len(generated["password"]) >= 12
    assert app.accounts.authenticate_user(
        email="ops@acme.example", password=generated["password"], source="test"
    )

    secret = "correct horse battery staple"
    chosen = cli.run("users", "create", "--account", str(account.id), "--email", "dev@acme.example",
                     "--password-stdin", "--json", stdin=secret + "\n")  # fmt: skip
    assert chosen.json()["password"] is None
    assert secret not in chosen.stdout + chosen.stderr
    assert app.accounts.authenticate_user(email="dev@acme.example", password=secret, source="t")

    token = cli.json("tokens", "create", "--account", "Acme", "--name", "ci", "--role", "admin")
    assert set(token) == {"id", "account_id", "name", "role", "prefix", "token"}
    assert token["token"].startswith("dy_")
    actor = app.accounts.authenticate_token(token["token"], source="test")
    assert actor.account_id == account.id
    assert actor.role == "admin"


def test_a_database_without_schema_is_one_line_not_a_trace(tmp_path: Path) -> None:
    """Not about either database (so it runs once): a file that was never migrated."""
    cli = make_cli(tmp_path / "data", f"sqlite:///{tmp_path / 'empty.db'}")
    result = cli.run("accounts", "list", code=1)
    assert result.stdout == ""
    assert result.stderr.startswith("error: database error: no such table")
    assert "dropyard migrate" in result.stderr
