"""The connections of the signed-in user's account: the list with today's figures, one
connection's page with its editable settings, and pause, resume and archive.

On that page too: an inbound connection checks a sample file (a dry run: validated as an
import would, nothing imported; anyone who may see the connection), and an outbound one
makes its file now or for a past range (admins only). A pull or deliver connection is
tested live against the partner's server (members and admins), and when that server's
key is not pinned or has changed, an admin approves the key it presents.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from dropyard.connections import trust
from dropyard.connections.details import FieldSpec, detail_fields
from dropyard.connections.rules import DATA_TYPES
from dropyard.connections.service import FIXED_DETAILS, STATUSES, ConnectionView
from dropyard.credentials.service import CredentialView
from dropyard.errors import Invalid, NotFound
from dropyard.files.processing import DryRun
from dropyard.remote.base import ProbeReport
from dropyard.web.ui import queries
from dropyard.web.ui.console import (
    Admin,
    Console,
    ConsoleDep,
    Id,
    Posted,
    SignedIn,
    Visitor,
    console_of,
    make_router,
    posted,
    redirect,
    text,
)
from dropyard.web.ui.forms import details_from, field_views, prefixed, shown

router = make_router()
# A sample is for checking, not importing: a bigger one is refused with a message.
SAMPLE_MAX_BYTES = 10 * 1024 * 1024
# The body of a sample's form besides the file: the boundaries and the CSRF token.
_FORM_OVERHEAD = 64 * 1024
_CHUNK = 64 * 1024
SAMPLE_TOO_BIG = (
    f"The sample is larger than {SAMPLE_MAX_BYTES // (1024 * 1024)} MiB. "
    "Check the first rows of the file instead."
)


@router.get("/connections")
def list_page(
    request: Request,
    console: ConsoleDep,
    who: SignedIn,
    status: str = "",
    data_type: Annotated[str, Query(alias="type")] = "",
) -> Response:
    status = status if status in STATUSES else ""
    data_type = data_type if data_type in DATA_TYPES else ""
    app = console.dropyard
    connections = app.connections.list_connections(
        who.actor, status=status or None, data_type=data_type or None
    )
    today = datetime.now(who.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    figures = queries.dashboard(app.sessions, account_id=who.account_id, since=today)
    return console.render(
        request,
        "connections.html",
        visitor=who,
        connections=connections,
        figures=figures,
        status_filter=status,
        data_type=data_type,
        statuses=STATUSES,
        data_types=DATA_TYPES,
    )


@router.get("/connections/{connection_id}")
def connection_page(
    request: Request, console: ConsoleDep, who: SignedIn, connection_id: Id
) -> Response:
    connection = console.dropyard.connections.get(who.actor, connection_id)
    return _page(request, console, who, connection)


@router.post("/connections/{connection_id}/settings")
def save_settings(
    request: Request, console: ConsoleDep, who: SignedIn, form: Posted, connection_id: Id
) -> Response:
    app = console.dropyard
    connection = app.connections.get(who.actor, connection_id)
    _, editable = _fields(connection)
    changes = details_from(form, [spec.name for spec in editable])
    try:
        app.connections.update_details(who.actor, connection.id, changes=changes)
    except Invalid as exc:
        return _page(
            request,
            console,
            who,
            connection,
            typed=changes,
            errors=prefixed(exc.errors or {"details": exc.message}),
            status=422,
        )
    console.leave(request, notice="Settings saved.")
    return redirect(f"/connections/{connection.id}")


@router.post("/connections/{connection_id}/pause")
def pause(
    request: Request, console: ConsoleDep, who: SignedIn, form: Posted, connection_id: Id
) -> Response:
    view = console.dropyard.connections.pause(who.actor, connection_id)
    return _after_change(request, console, form, view, "paused")


@router.post("/connections/{connection_id}/resume")
def resume(
    request: Request, console: ConsoleDep, who: SignedIn, form: Posted, connection_id: Id
) -> Response:
    view = console.dropyard.connections.resume(who.actor, connection_id)
    return _after_change(request, console, form, view, "resumed")


@router.get("/connections/{connection_id}/archive")
def archive_page(request: Request, console: ConsoleDep, who: Admin, connection_id: Id) -> Response:
    """Archiving is final: a page to confirm it, which works without JavaScript."""
    connection = console.dropyard.connections.get(who.actor, connection_id)
    return console.render(request, "archive.html", visitor=who, connection=connection)


@router.post("/connections/{connection_id}/archive")
def archive(
    request: Request, console: ConsoleDep, who: SignedIn, form: Posted, connection_id: Id
) -> Response:
    view = console.dropyard.connections.archive(who.actor, connection_id)
    return _after_change(request, console, form, view, "archived")


async def _sample_form(request: Request) -> FormData:
    """The form of a sample check, refused before it is read when the body says it is
    much bigger than a sample may be."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > SAMPLE_MAX_BYTES + _FORM_OVERHEAD:
        console_of(request).session(request)  # the error page needs the session
        raise Invalid(SAMPLE_TOO_BIG, field="sample")
    return await posted(request)


SampleForm = Annotated[FormData, Depends(_sample_form)]


@router.post("/connections/{connection_id}/check")
def check_sample(
    request: Request, console: ConsoleDep, who: SignedIn, form: SampleForm, connection_id: Id
) -> Response:
    """A dry run of an uploaded sample: read-only, so anyone who sees the connection."""
    app = console.dropyard
    connection = app.connections.get(who.actor, connection_id)
    if connection.direction != "inbound":
        raise NotFound("only inbound connections check samples")
    upload = form.get("sample")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _page(
            request, console, who, connection, check_error="Choose a file to check.", status=422
        )
    name = Path(upload.filename.replace("\\", "/")).name or "sample"
    spool = app.settings.spool_dir
    spool.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".sample-", dir=spool)
    path = Path(temp)
    try:
        with os.fdopen(fd, "wb") as out:
            size = 0
            while chunk := upload.file.read(_CHUNK):
                size += len(chunk)
                if size > SAMPLE_MAX_BYTES:
                    return _page(
                        request, console, who, connection, check_error=SAMPLE_TOO_BIG, status=413
                    )
                out.write(chunk)
        checked = app.processor.dry_run(connection_id=connection.id, name=name, path=path)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    return _page(request, console, who, connection, check=checked, check_name=name)


@router.post("/connections/{connection_id}/run")
def run_now(
    request: Request, console: ConsoleDep, who: Admin, form: Posted, connection_id: Id
) -> Response:
    """Make an outbound file now, or for a past range when both dates are given."""
    app = console.dropyard
    connection = app.connections.get(who.actor, connection_id)
    if connection.direction != "outbound":
        raise NotFound("only outbound connections make files")
    typed = {"range_from": text(form, "range_from"), "range_to": text(form, "range_to")}
    errors: dict[str, str] = {}
    days: dict[str, date] = {}
    for field, label in (("range_from", "From"), ("range_to", "To")):
        given = typed[field].strip()
        if not given:
            continue
        try:
            days[field] = date.fromisoformat(given)
        except ValueError:
            errors[field] = f"{label} '{given[:40]}' is not a date (YYYY-MM-DD)."
    backfill = any(typed[f].strip() for f in typed)
    if backfill and not errors:
        for field, label in (("range_from", "From"), ("range_to", "To")):
            if field not in days:
                errors[field] = f"{label} is needed for a backfill."
    if errors:
        return _page(
            request, console, who, connection, run_errors=errors, run_typed=typed, status=422
        )
    try:
        result = app.outbound.run(
            connection.id, range_from=days.get("range_from"), range_to=days.get("range_to")
        )
    except Invalid as exc:
        if not backfill:
            raise
        field = exc.field if exc.field and exc.field in typed else "range_from"
        return _page(
            request,
            console,
            who,
            connection,
            run_errors={field: exc.message},
            run_typed=typed,
            status=422,
        )
    made = result.file
    notice = (
        f"File '{made.name}' made: {result.rows} rows."
        if made
        else f"No file made: {result.reason}."
    )
    console.leave(request, notice=notice)
    return redirect(f"/connections/{connection.id}/history")


@router.post("/connections/{connection_id}/test")
def test_connection(
    request: Request, console: ConsoleDep, who: SignedIn, form: Posted, connection_id: Id
) -> Response:
    """Connect to the partner's server now and show each check: members and admins."""
    app = console.dropyard
    connection = app.connections.get(who.actor, connection_id)
    if not trust.probed(connection.method, connection.methodology):
        raise NotFound("only pull and deliver connections reach a partner's server")
    who.actor.require_role("member")
    report = app.remote.test(who.actor, connection.id)
    connection = app.connections.get(who.actor, connection.id)  # the test may clear an error
    return _page(request, console, who, connection, probe=report)


@router.post("/connections/{connection_id}/approve")
def approve_key(
    request: Request, console: ConsoleDep, who: Admin, form: Posted, connection_id: Id
) -> Response:
    """Pin the key the server presents now, once the admin confirms it is the partner's."""
    app = console.dropyard
    connection = app.connections.get(who.actor, connection_id)
    fingerprint = text(form, "fingerprint").strip()
    what = trust.key_label(connection.method).lower()
    problem = ""
    if text(form, "confirm") != "yes":
        problem = f"Confirm that the partner gave you this {what} before approving it."
    else:
        try:
            app.remote.approve(who.actor, connection.id, fingerprint=fingerprint)
        except Invalid as exc:
            problem = exc.message
    if problem:
        return _page(
            request,
            console,
            who,
            connection,
            approve_fingerprint=fingerprint,
            approve_error=problem,
            status=422,
        )
    console.leave(request, notice=f"The {what} {fingerprint} is pinned; transfers may go on.")
    return redirect(f"/connections/{connection.id}")


def _after_change(
    request: Request, console: Console, form: Any, view: ConnectionView, done: str
) -> Response:
    console.leave(request, notice=f"Connection '{view.name}' {done}.")
    back = text(form, "back")
    return redirect(f"/connections/{view.id}" if back == "detail" else "/connections")


def _fields(connection: ConnectionView) -> tuple[list[FieldSpec], list[FieldSpec]]:
    """Every detail field of the connection, and those that may still change."""
    specs = detail_fields(
        connection.direction, connection.methodology, connection.method, connection.data_type
    )
    return specs, [spec for spec in specs if spec.name not in FIXED_DETAILS]


def _page(
    request: Request,
    console: Console,
    who: Visitor,
    connection: ConnectionView,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    check: DryRun | None = None,
    check_name: str = "",
    check_error: str = "",
    run_errors: dict[str, str] | None = None,
    run_typed: dict[str, str] | None = None,
    probe: ProbeReport | None = None,
    approve_fingerprint: str = "",
    approve_error: str = "",
) -> Response:
    credential: CredentialView | None = None
    if connection.credential_id is not None:
        try:
            credential = console.dropyard.credentials.get(who.actor, connection.credential_id)
        except NotFound:
            credential = None
    specs, editable = _fields(connection)
    settings = [(spec.label, shown(connection.details.get(spec.name))) for spec in specs]
    fixed = [
        (spec.label, shown(connection.details.get(spec.name)))
        for spec in specs
        if spec.name in FIXED_DETAILS
    ]
    values = {**connection.details, **(typed or {})}
    return console.render(
        request,
        "connection.html",
        status=status,
        visitor=who,
        connection=connection,
        credential=credential,
        settings=settings,
        fixed=fixed,
        fields=field_views(editable, values, errors or {}),
        errors=errors or {},
        check=check,
        check_name=check_name,
        check_error=check_error,
        sample_max_mib=SAMPLE_MAX_BYTES // (1024 * 1024),
        run_errors=run_errors or {},
        run_typed=run_typed or {},
        probed=trust.probed(connection.method, connection.methodology),
        can_test=who.user.role in ("member", "admin"),
        trust_notice=trust.notice(connection),
        probe=probe,
        key_label=trust.key_label(connection.method),
        approve_fingerprint=approve_fingerprint or _to_approve(connection, probe),
        approve_error=approve_error,
    )


def _to_approve(connection: ConnectionView, probe: ProbeReport | None) -> str:
    """The key an admin may approve: one a transfer refused, or one a test saw that is
    not the pinned one."""
    if connection.presented_fingerprint:
        return connection.presented_fingerprint
    if trust.pin_detail(connection.method, connection.methodology, connection.details) is None:
        return ""
    seen = probe.fingerprint if probe else None
    pinned = trust.typed_pin(connection.method, connection.methodology, connection.details)
    return seen if seen and not trust.same(seen, pinned) else ""
