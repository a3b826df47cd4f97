"""`dropyard files list|show|retry` and `dropyard worker`."""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dropyard.cli.common import emit, errors_to_exit, handles_errors, state
from dropyard.cli.output import JsonFlag, cli_actor, guarded
from dropyard.errors import Invalid
from dropyard.logs import configure_logging
from dropyard.metrics import MetricsServer

log = logging.getLogger(__name__)

files_app = typer.Typer(no_args_is_help=True, help="Files and their history.")


@files_app.command("list")
@guarded
def list_files(
    ctx: typer.Context,
    connection: Annotated[int, typer.Option("--connection", help="connection id")],
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The newest files of a connection, with their state and row counts."""
    app = state(ctx).app()
    found = app.files.list_files(cli_actor(), connection_id=connection, limit=limit)

    def human() -> None:
        table = Table("id", "received", "name", "state", "rows", "ok", "errors")
        for f in found:
            table.add_row(
                str(f.id),
                f.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                f.name,
                f.state,
                *(str(v if v is not None else "") for v in (f.total_rows, f.ok_rows, f.error_rows)),
            )
        Console().print(table)

    emit(found, as_json=as_json, human=human)


@files_app.command("show")
@guarded
def show_file(ctx: typer.Context, file_id: int, as_json: JsonFlag = False) -> None:
    """One file: its record and its history (every state change, with time and reason)."""
    app = state(ctx).app()
    view, events = app.files.get(cli_actor(), file_id)

    def human() -> None:
        console = Console()
        console.print(f"[bold]{view.name}[/] ({view.state}) trace {view.trace_id}")
        console.print(f"size {view.size}  sha256 {view.sha256}")
        for event in events:
            console.print(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.state:<11} {event.reason}")

    emit({"file": view, "history": events}, as_json=as_json, human=human)


@files_app.command("retry")
@guarded
def retry_file(ctx: typer.Context, file_id: int, as_json: JsonFlag = False) -> None:
    """Put a dead or failed file back in line for processing."""
    app = state(ctx).app()
    app.files.get(cli_actor(), file_id)  # exists, and the actor may see it
    app.processor.retry(file_id)
    app.jobs.enqueue_file(file_id)
    emit(
        {"id": file_id, "state": "received"},
        as_json=as_json,
        human=lambda: typer.echo(f"file {file_id} will be processed again"),
    )


@handles_errors
def worker(
    ctx: typer.Context,
    workers: Annotated[int, typer.Option("--workers", help="threads")] = 2,
) -> None:
    """Run background jobs (file processing, scheduled runs) from the shared queue.

    Periodic work (scheduled runs, the sweep) is the scheduler role's: `dropyard serve`
    runs it, or `serve --roles scheduler` on nodes of their own."""
    app = state(ctx).app()
    configure_logging(app.settings)
    app.migrate()
    app.installation.check_master_key()  # remote passwords would not open either
    consumer = app.jobs.huey.create_consumer(workers=workers, worker_type="thread", periodic=False)
    exporter = None
    if app.settings.metrics_port is not None:
        exporter = MetricsServer(app.metrics, token=app.settings.metrics_token)
        port = exporter.start(app.settings.bind_host, app.settings.metrics_port)
        log.info("metrics on %s:%d/metrics", app.settings.bind_host, port)
    try:
        consumer.run()
    finally:
        if exporter is not None:
            exporter.stop()


def run_connection(
    ctx: typer.Context,
    connection_id: int,
    range_from: Annotated[
        str | None, typer.Option("--from", help="backfill from this date (YYYY-MM-DD)")
    ] = None,
    range_to: Annotated[
        str | None, typer.Option("--to", help="backfill up to this date, included")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make an outbound connection's file now, or for a past range (a backfill); pull
    what a `pull` connection's partner has now."""
    with errors_to_exit(as_json):
        start, end = _day(range_from, "from"), _day(range_to, "to")
        if (start is None) != (end is None):
            raise Invalid("give both --from and --to for a backfill", field="from")
        app = state(ctx).app()
        view = app.connections.get(cli_actor(), connection_id)
        if view.methodology == "pull":
            if start is not None:
                raise Invalid("a pull takes what is there now; --from/--to are for outbound")
            pulled = app.remote.pull(connection_id)
            emit(pulled, as_json=as_json, human=lambda: typer.echo(pulled.reason))
            if pulled.state == "failed":
                raise typer.Exit(1)
            return
        result = app.outbound.run(connection_id, range_from=start, range_to=end)
        if result.file is not None and result.file.state == "generated":
            app.jobs.enqueue_delivery(result.file.id)
        emit(
            result,
            as_json=as_json,
            human=lambda: typer.echo(result.file.name if result.file else result.reason),
        )


def _day(text: str | None, field: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Invalid(f"--{field} '{text[:40]}' is not a date (YYYY-MM-DD)", field=field) from None
