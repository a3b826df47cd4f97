"""`dropyard accounts`, `dropyard users` and `dropyard tokens`: tenants and their logins."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dropyard.accounts.models import Account, User
from dropyard.cli.common import emit, state, to_jsonable
from dropyard.cli.output import (
    AccountRef,
    JsonFlag,
    PasswordStdin,
    cli_actor,
    console_for,
    guarded,
    pairs,
    read_password,
    secret_notice,
    table,
)

accounts_app = typer.Typer(no_args_is_help=True, help="Accounts (tenants): brands and partners.")
users_app = typer.Typer(no_args_is_help=True, help="Users who log in to the web UI.")
tokens_app = typer.Typer(no_args_is_help=True, help="API tokens of an account.")


def account_json(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "kind": account.kind,
        "timezone": account.timezone,
        "conversion_window_days": account.conversion_window_days,
        "created_at": to_jsonable(account.created_at),
    }


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "account_id": user.account_id,
        "email": user.email,
        "role": user.role,
        "created_at": to_jsonable(user.created_at),
    }


@accounts_app.command("create")
@guarded
def create_account(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="unique name of the account")],
    kind: Annotated[str, typer.Option("--kind", help="brand or partner")],
    timezone: Annotated[
        str, typer.Option("--timezone", help="e.g. Europe/Paris; reports run in it")
    ] = "UTC",
    as_json: JsonFlag = False,
) -> None:
    """Create an account."""
    account = (
        state(ctx)
        .app()
        .accounts.create_account(cli_actor(), name=name, kind=kind, timezone=timezone)
    )
    data = account_json(account)

    def human() -> None:
        console = console_for(as_json)
        console.print(f"Account #{account.id} '{account.name}' created.")
        pairs(console, [("kind", account.kind), ("timezone", account.timezone)])

    emit(data, as_json=as_json, human=human)


@accounts_app.command("list")
@guarded
def list_accounts(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List every account."""
    accounts = state(ctx).app().accounts.list_accounts(cli_actor())

    def human() -> None:
        rows = [(a.id, a.name, a.kind, a.timezone) for a in accounts]
        table(console_for(as_json), ("id", "name", "kind", "timezone"), rows)

    emit([account_json(a) for a in accounts], as_json=as_json, human=human)


@users_app.command("create")
@guarded
def create_user(
    ctx: typer.Context,
    account: AccountRef,
    email: Annotated[str, typer.Option("--email", help="the login of the user")],
    role: Annotated[str, typer.Option("--role", help="admin, member or viewer")] = "member",
    password_stdin: PasswordStdin = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a user; without --password-stdin a password is generated and shown once."""
    password = read_password(confirm=True) if password_stdin else None
    created = (
        state(ctx)
        .app()
        .accounts.create_user(
            cli_actor(), account=account, email=email, role=role, password=password
        )
    )
    data = {**user_json(created.user), "password": created.password}

    def human() -> None:
        console = console_for(as_json)
        user = created.user
        console.print(f"User #{user.id} {user.email} ({user.role}) created.")
        if created.password:
            secret_notice(console, [("login", user.email), ("password", created.password)])

    emit(data, as_json=as_json, human=human)


@tokens_app.command("create")
@guarded
def create_token(
    ctx: typer.Context,
    account: AccountRef,
    name: Annotated[str, typer.Option("--name", help="what the token is for, e.g. ci")],
    role: Annotated[str, typer.Option("--role", help="admin, member or viewer")] = "admin",
    as_json: JsonFlag = False,
) -> None:
    """Create an API token; its value is shown once."""
    created = (
        state(ctx).app().accounts.create_token(cli_actor(), account=account, name=name, role=role)
    )
    token = created.token
    data = {
        "id": token.id,
        "account_id": token.account_id,
        "name": token.name,
        "role": token.role,
        "prefix": token.prefix,
        "token": created.secret,
    }

    def human() -> None:
        console = console_for(as_json)
        console.print(f"Token #{token.id} '{token.name}' ({token.role}) created.")
        secret_notice(console, [("token", created.secret)])

    emit(data, as_json=as_json, human=human)


@tokens_app.command("revoke")
@guarded
def revoke_token(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(metavar="ID", help="the token's id")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke an API token at once."""
    state(ctx).app().accounts.revoke_token(cli_actor(), token_id)
    emit(
        {"id": token_id, "status": "revoked"},
        as_json=as_json,
        human=lambda: console_for(as_json).print(f"Token #{token_id} revoked."),
    )
