"""`dropyard connections`: create (by driving the one wizard), list, show, pause, resume,
archive; test a remote connection live and approve its server's key.

`connections create` drives `connections/wizard.py` through `cli/wizard_flow.py`: with
every choice given as flags it runs through; on a terminal the steps left open are asked.
A remote connection's review tests the partner's server and shows its host key (or
certificate): a terminal asks to trust it, flags must name it (--accept-host-key).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from dropyard.cli.common import emit, state, to_jsonable
from dropyard.cli.output import (
    JsonFlag,
    PasswordStdin,
    cli_actor,
    console_for,
    guarded,
    naming_flags,
    pairs,
    read_password,
    read_text_file,
    secret_notice,
    stdin_is_tty,
    table,
)
from dropyard.cli.wizard_flow import (
    FLAGS,
    Answers,
    Prompter,
    accepted_pin,
    all_given,
    create_connection,
    missing_flags,
    run_wizard,
    show_review,
    show_verdicts,
)
from dropyard.connections import rules, trust, wizard
from dropyard.connections.service import STATUSES, ConnectionView, Created
from dropyard.errors import Invalid
from dropyard.probing import probe_state
from dropyard.remote.base import ProbeReport

connections_app = typer.Typer(no_args_is_help=True, help="Connections: how files move.")

ConnectionId = Annotated[int, typer.Argument(metavar="ID", help="the connection's id")]


def _opt(flag: str, text: str) -> Any:
    return typer.Option(flag, help=text, rich_help_panel="Details")


def connection_json(view: ConnectionView) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(view)
    data["trust"] = trust.notice(view)
    return data


def report_json(report: ProbeReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    data: dict[str, Any] = to_jsonable(report)
    data["ok"] = report.ok
    return data


def created_json(created: Created) -> dict[str, Any]:
    credential: dict[str, Any] | None = None
    if created.provisioned is not None:
        view = created.provisioned.credential
        credential = {
            "id": view.id,
            "name": view.name,
            "kind": view.kind,
            "username": view.login or view.username,
            "password": created.provisioned.password,
            "public_key": view.public_key,
        }
    return {**connection_json(created.connection), "credential": credential}


def show_connection(console: Console, view: ConnectionView) -> None:
    pairs(
        console,
        [
            ("account", view.account_id),
            ("status", view.status + (f" ({view.status_reason})" if view.status_reason else "")),
            ("direction", view.direction),
            ("data type", view.data_type),
            ("method", f"{view.method} {view.methodology}"),
            ("folder", view.folder),
            ("uri", view.uri),
            ("email address", view.email_address),
            ("credential", view.credential_id),
            ("created", view.created_at),
            ("last active", view.last_active_at),
            *(
                (f"  {key}", "(none)" if value in (None, []) else value)
                for key, value in view.details.items()
            ),
            ("remote error", view.remote_error),
            ("remote error at", view.remote_error_at),
            ("presented fingerprint", view.presented_fingerprint),
        ],
    )
    notice = trust.notice(view)
    if notice is not None:
        console.print(f"Not trusted: {notice}", markup=False, highlight=False)


def show_created(console: Console, created: Created) -> None:
    view = created.connection
    console.print(f"Connection #{view.id} '{view.name}' created.")
    show_connection(console, view)
    if created.provisioned is None:
        return
    credential = created.provisioned.credential
    console.print(f"Credential #{credential.id} '{credential.name}' ({credential.kind}) created.")
    if created.provisioned.password:
        secret_notice(
            console,
            [("username", credential.login or ""), ("password", created.provisioned.password)],
        )
    if credential.public_key:
        console.print("Install this public key on the partner's server (authorized_keys):")
        console.print(credential.public_key, markup=False, highlight=False, soft_wrap=True)


@connections_app.command("create")
@guarded
def create(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="account name or id")],
    name: Annotated[str | None, typer.Option("--name", help="unique within the account")] = None,
    direction: Annotated[
        str | None, typer.Option("--direction", help="inbound or outbound")
    ] = None,
    data_type: Annotated[str | None, typer.Option("--data-type", help="e.g. conversions")] = None,
    method: Annotated[str | None, typer.Option("--method", help="sftp, ftp or email")] = None,
    methodology: Annotated[
        str | None, typer.Option("--methodology", help="push, pull, hosted or deliver")
    ] = None,
    credential: Annotated[
        int | None, typer.Option("--credential", help="id of an existing credential")
    ] = None,
    new_kind: Annotated[
        str | None,
        typer.Option("--new-credential-kind", help="create one: password, public-key, key-pair"),
    ] = None,
    new_name: Annotated[
        str | None, typer.Option("--new-credential-name", help="default: the connection's name")
    ] = None,
    public_key_file: Annotated[
        Path | None, typer.Option("--public-key-file", help="public-key: the key file")
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="remote: the login on their server")
    ] = None,
    password_stdin: PasswordStdin = False,
    host: Annotated[str | None, _opt("--host", "pull/deliver: the partner's server")] = None,
    port: Annotated[str | None, _opt("--port", "pull/deliver: its port")] = None,
    folder: Annotated[
        str | None, _opt("--folder", "pull/deliver: absolute path; IMAP: mailbox")
    ] = None,
    file_pattern: Annotated[
        str | None, _opt("--file-pattern", "inbound: names to take, e.g. *.csv")
    ] = None,
    delete_after_pull: Annotated[
        bool | None, _opt("--delete-after-pull/--no-delete-after-pull", "pull: delete taken files")
    ] = None,
    result_folder: Annotated[
        str | None, _opt("--result-folder", "pull: where results go back")
    ] = None,
    plain_ftp: Annotated[bool | None, _opt("--plain-ftp/--no-plain-ftp", "FTP without TLS")] = None,
    plain_imap: Annotated[bool | None, _opt("--plain-imap/--no-plain-imap", "IMAP no TLS")] = None,
    host_key_fingerprint: Annotated[
        str | None, _opt("--host-key-fingerprint", "SHA256:...")
    ] = None,
    certificate_fingerprint: Annotated[
        str | None, _opt("--certificate-fingerprint", "SHA-256 hex")
    ] = None,
    return_email: Annotated[str | None, _opt("--return-email", "email push: results")] = None,
    allowed_senders: Annotated[str | None, _opt("--allowed-senders", "comma-separated")] = None,
    recipients: Annotated[
        str | None, _opt("--recipients", "email deliver, comma-separated")
    ] = None,
    schedule: Annotated[str | None, _opt("--schedule", "a preset or a cron expression")] = None,
    timezone: Annotated[str | None, _opt("--timezone", "of the schedule")] = None,
    stable_seconds: Annotated[
        str | None, _opt("--stable-seconds", "pull: unchanged size for this long")
    ] = None,
    range_: Annotated[
        str | None, _opt("--range", "outbound: e.g. yesterday, since_last_run")
    ] = None,
    file_format: Annotated[str | None, _opt("--format", "csv, tsv, pipe or xlsx")] = None,
    compression: Annotated[str | None, _opt("--compression", "none or gzip")] = None,
    name_template: Annotated[str | None, _opt("--name-template", "outbound file name")] = None,
    send_empty: Annotated[
        bool | None, _opt("--send-empty/--no-send-empty", "outbound: header-only files")
    ] = None,
    report: Annotated[
        str | None, _opt("--report", "reports: performance_by_day or action_listing")
    ] = None,
    retention_days: Annotated[
        str | None, _opt("--retention-days", "outbound hosted: days kept")
    ] = None,
    max_attachment_mb: Annotated[
        str | None, _opt("--max-attachment-mb", "email deliver: larger as a link")
    ] = None,
    allow_extra_columns: Annotated[
        bool | None,
        _opt("--allow-extra-columns/--no-allow-extra-columns", "inbound: ignore unknown columns"),
    ] = None,
    accept_host_key: Annotated[
        str | None,
        typer.Option(
            "--accept-host-key",
            metavar="FINGERPRINT",
            help="pull/deliver: trust the host key (or certificate) the review shows",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a connection with the wizard: from flags, or asked on a terminal."""
    details = {
        "host": host,
        "port": port,
        "folder": folder,
        "file_pattern": file_pattern,
        "delete_after_pull": delete_after_pull,
        "result_folder": result_folder,
        "plain_ftp": plain_ftp,
        "plain_imap": plain_imap,
        "host_key_fingerprint": host_key_fingerprint,
        "certificate_fingerprint": certificate_fingerprint,
        "return_email": return_email,
        "allowed_senders": allowed_senders,
        "recipients": recipients,
        "schedule": schedule,
        "timezone": timezone,
        "stable_seconds": stable_seconds,
        "range": range_,
        "format": file_format,
        "compression": compression,
        "name_template": name_template,
        "send_empty": send_empty,
        "report": report,
        "retention_days": retention_days,
        "max_attachment_mb": max_attachment_mb,
        "allow_extra_columns": allow_extra_columns,
    }
    answers = Answers(
        name=name,
        direction=direction,
        data_type=data_type,
        method=method,
        methodology=methodology,
        details={key: value for key, value in details.items() if value is not None},
        credential_id=credential,
        new_kind=new_kind,
        new_name=new_name,
        username=username,
    )
    app = state(ctx).app()
    console = console_for(as_json)
    wizard_ctx = app.connections.wizard_context(cli_actor(), account=account)
    interactive = stdin_is_tty() and not password_stdin and not all_given(answers)
    with naming_flags(FLAGS):
        if public_key_file is not None:
            answers.public_key = read_text_file(public_key_file, field="new.public_key")
        if password_stdin:
            answers.password = read_password(field="new.password", confirm=True)
    if not interactive:
        problem = missing_flags(answers)
        if problem is not None:
            raise problem

    def probe(st: wizard.WizardState) -> ProbeReport | None:
        return probe_state(app, cli_actor(), account=account, state=st)

    prompter = None
    if interactive:
        hints = {**asdict(answers), "password": None, "public_key": None}
        prompter = Prompter(console, hints=hints, probe=probe, accept=accept_host_key)
    st = run_wizard(wizard.start(), wizard_ctx, answers, prompter, set())
    pin = accept_host_key
    if prompter is None:
        tested = probe(st)
        if not as_json:
            show_review(console, wizard.review(st, wizard_ctx), st, tested)
        pin = accepted_pin(st, tested, accept_host_key)
    created = create_connection(app, account, wizard_ctx, st, answers, prompter, pin)
    emit(created_json(created), as_json=as_json, human=lambda: show_created(console, created))


@connections_app.command("list")
@guarded
def list_connections(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option("--account", help="name or id")] = None,
    status: Annotated[str | None, typer.Option("--status", help="active, paused, archived")] = None,
    data_type: Annotated[str | None, typer.Option("--data-type", help="e.g. conversions")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List connections."""
    with naming_flags(FLAGS):
        if status is not None and status not in STATUSES:
            raise Invalid(f"status '{status}' is not one of {', '.join(STATUSES)}", field="status")
        if data_type is not None:
            rules.as_data_type(data_type)
    app = state(ctx).app()
    views = app.connections.list_connections(
        cli_actor(), account=account, status=status, data_type=data_type
    )

    def human() -> None:
        rows = [
            (v.id, v.account_id, v.name, v.direction, v.data_type,
             f"{v.method} {v.methodology}", v.status, v.uri)
            for v in views
        ]  # fmt: skip
        columns = ("id", "account", "name", "direction", "data type", "method", "status", "uri")
        table(console_for(as_json), columns, rows)

    emit([connection_json(v) for v in views], as_json=as_json, human=human)


def _answer(as_json: bool, view: ConnectionView, verb: str | None = None) -> None:
    def human() -> None:
        console = console_for(as_json)
        console.print(f"Connection #{view.id} '{view.name}'" + (f" {verb}." if verb else ""))
        show_connection(console, view)

    emit(connection_json(view), as_json=as_json, human=human)


@connections_app.command("show")
@guarded
def show(ctx: typer.Context, connection_id: ConnectionId, as_json: JsonFlag = False) -> None:
    """Show one connection."""
    _answer(as_json, state(ctx).app().connections.get(cli_actor(), connection_id))


@connections_app.command("pause")
@guarded
def pause(ctx: typer.Context, connection_id: ConnectionId, as_json: JsonFlag = False) -> None:
    """Pause a connection: nothing moves until it is resumed."""
    _answer(as_json, state(ctx).app().connections.pause(cli_actor(), connection_id), "paused")


@connections_app.command("resume")
@guarded
def resume(ctx: typer.Context, connection_id: ConnectionId, as_json: JsonFlag = False) -> None:
    """Resume a paused connection."""
    _answer(as_json, state(ctx).app().connections.resume(cli_actor(), connection_id), "resumed")


@connections_app.command("archive")
@guarded
def archive(ctx: typer.Context, connection_id: ConnectionId, as_json: JsonFlag = False) -> None:
    """Archive a connection for good; its history stays."""
    view = state(ctx).app().connections.archive(cli_actor(), connection_id)
    _answer(as_json, view, "archived")


@connections_app.command("test")
@guarded
def run_test(ctx: typer.Context, connection_id: ConnectionId, as_json: JsonFlag = False) -> None:
    """Connect to the partner's server now and say what works: exit 0 when all does."""
    app = state(ctx).app()
    report = app.remote.test(cli_actor(), connection_id)
    view = app.connections.get(cli_actor(), connection_id)

    def human() -> None:
        console = console_for(as_json)
        console.print(f"Connection #{view.id} '{view.name}': {view.uri}", highlight=False)
        show_verdicts(console, report)
        pairs(console, [("fingerprint", report.fingerprint)])
        hint = _approve_hint(view, report)
        if hint is not None:
            console.print(hint, markup=False, highlight=False)

    emit(report_json(report), as_json=as_json, human=human)
    if not report.ok:
        raise typer.Exit(1)


def _approve_hint(view: ConnectionView, report: ProbeReport) -> str | None:
    """The command that trusts what the test saw, when it is not what is pinned."""
    if report.fingerprint is None:
        return None
    pinned = trust.typed_pin(view.method, view.methodology, view.details)
    if pinned is not None and trust.same(pinned, report.fingerprint):
        return None
    if trust.pin_detail(view.method, view.methodology, view.details) is None:
        return None
    what = "host key" if view.method == "sftp" else "certificate"
    state_ = "not pinned yet" if pinned is None else f"not the pinned {pinned}"
    return (
        f"The server's {what} is {state_}. If it is the partner's, trust it: "
        f"{trust.approve_command(view.id, report.fingerprint)}"
    )


@connections_app.command("approve")
@guarded
def approve(
    ctx: typer.Context,
    connection_id: ConnectionId,
    fingerprint: Annotated[
        str,
        typer.Option(
            "--fingerprint",
            metavar="FINGERPRINT",
            help="the host key (SHA256:...) or certificate fingerprint the server presents",
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Trust the key the partner's server presents now (after a change): it is pinned."""
    app = state(ctx).app()
    app.remote.approve(cli_actor(), connection_id, fingerprint=fingerprint)
    view = app.connections.get(cli_actor(), connection_id)
    pinned = trust.typed_pin(view.method, view.methodology, view.details) or fingerprint
    what = "host key" if view.method == "sftp" else "certificate"

    def human() -> None:
        console = console_for(as_json)
        console.print(f"Connection #{view.id} '{view.name}': {what} {pinned} pinned.")
        show_connection(console, view)

    emit(connection_json(view), as_json=as_json, human=human)
