"""`dropyard migrate` and `dropyard serve`."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from dropyard.accounts.actors import operator
from dropyard.cli.common import handles_errors, state
from dropyard.logs import configure_logging
from dropyard.settings import ROLES


def migrate(ctx: typer.Context) -> None:
    """Create or upgrade the database schema."""
    app = state(ctx).app()
    app.migrate()
    typer.echo("database is up to date", err=True)


@handles_errors
def serve_command(
    ctx: typer.Context,
    roles: Annotated[
        str, typer.Option("--roles", help=f"comma-separated, of: {', '.join(ROLES)}")
    ] = ",".join(ROLES),
    demo: Annotated[
        bool, typer.Option("--demo", help="on an empty data dir: fill it with demo data first")
    ] = False,
) -> None:
    """Run Dropyard: the API and the hosted SFTP, FTP(S) and SMTP endpoints."""
    chosen = tuple(r.strip() for r in roles.split(",") if r.strip())
    unknown = [r for r in chosen if r not in ROLES]
    if unknown:
        typer.echo(
            f"error: unknown role(s): {', '.join(unknown)}; choose from {', '.join(ROLES)}",
            err=True,
        )
        raise typer.Exit(2)
    app = state(ctx).app()
    configure_logging(app.settings)
    app.migrate()
    # A node with another master key would present host keys of its own: refuse it.
    app.installation.check_master_key()
    if app.accounts.count_users() == 0:
        _first_admin(app)
    if demo and not any(a.name == "Demo Brand" for a in app.accounts.list_accounts(operator())):
        from dropyard.demo import instructions, seed

        sys.stderr.write(instructions(seed(app), host=app.settings.public_host))
    from dropyard.server import serve

    asyncio.run(serve(app, roles=chosen))


def _first_admin(app: object) -> None:
    """On an empty data dir: one admin account and user, the password printed once."""
    from dropyard.app import Dropyard

    assert isinstance(app, Dropyard)
    actor = operator("serve")
    account = app.accounts.create_account(actor, name="Default", kind="brand")
    created = app.accounts.create_user(
        actor, account=account.id, email="admin@localhost", role="admin"
    )
    sys.stderr.write(
        "\n  First start: an admin was created. This password is shown only now.\n"
        f"    login:    {created.user.email}\n"
        f"    password: {created.password}\n\n"
    )


@handles_errors
def demo_command(ctx: typer.Context) -> None:
    """Fill an empty data dir with demo data and connections, and say how to try them."""
    from dropyard.demo import instructions, seed

    app = state(ctx).app()
    app.migrate()
    demo = seed(app)
    typer.echo(instructions(demo, host=app.settings.public_host))
