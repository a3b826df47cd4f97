"""The connections of the signed-in user's account: the list with today's figures, one
connection's page with its editable settings, and pause, resume and archive."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request
from starlette.responses import Response

from dropyard.connections.details import FieldSpec, detail_fields
from dropyard.connections.rules import DATA_TYPES
from dropyard.connections.service import FIXED_DETAILS, STATUSES, ConnectionView
from dropyard.credentials.service import CredentialView
from dropyard.errors import Invalid, NotFound
from dropyard.web.ui import queries
from dropyard.web.ui.console import (
    Admin,
    Console,
    ConsoleDep,
    Id,
    Posted,
    SignedIn,
    Visitor,
    make_router,
    redirect,
    text,
)
from dropyard.web.ui.forms import details_from, field_views, prefixed, shown

router = make_router()


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
    )
