"""The `dropyard` command (typer). Each command parses input, calls a service, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dropyard.cli import accounts, connections, credentials, doctor, files, ledger
from dropyard.cli import serve as serve_commands
from dropyard.cli.common import CliState

cli = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@cli.callback()
def root(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="DROPYARD_DATA_DIR", help="default ./var"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", envvar="DROPYARD_CONFIG", help="a TOML file")
    ] = None,
) -> None:
    """Dropyard: batch data connections with partners."""
    ctx.obj = CliState(data_dir=data_dir, config=config)


cli.command("migrate")(serve_commands.migrate)
cli.command("serve")(serve_commands.serve_command)
cli.command("demo")(serve_commands.demo_command)
cli.add_typer(accounts.accounts_app, name="accounts")
cli.add_typer(accounts.users_app, name="users")
cli.add_typer(accounts.tokens_app, name="tokens")
cli.add_typer(ledger.campaigns_app, name="campaigns")
cli.add_typer(ledger.partners_app, name="partners")
cli.add_typer(credentials.credentials_app, name="credentials")
cli.add_typer(connections.connections_app, name="connections")
cli.add_typer(files.files_app, name="files")
connections.connections_app.command("run")(files.run_connection)
cli.command("worker")(files.worker)
cli.command("doctor")(doctor.doctor_command)


def main() -> None:
    cli()
