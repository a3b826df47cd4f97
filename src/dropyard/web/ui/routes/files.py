"""A connection's history: every file with its state and row counts, one file's events,
and downloads of the result summary and error file from the connection's folder.

A file is reached only through a connection of the user's own account, and only if it
belongs to that connection: any other id is a 404, whatever exists elsewhere.

Retrying a failed file by hand is offered when the pipeline can: a `retry(actor, file_id)`
on the Dropyard if it has one, else its processor's `retry(file_id)` (after this module's
own tenant and role checks) followed by a nudge to the queue. Without either, no button.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal, cast
from urllib.parse import quote

from fastapi import Request
from starlette.responses import Response, StreamingResponse

from dropyard.accounts.actors import Actor
from dropyard.errors import NotFound
from dropyard.files import names
from dropyard.files.service import EventView, FileView
from dropyard.web.ui.console import (
    Console,
    ConsoleDep,
    Id,
    Posted,
    SignedIn,
    Visitor,
    make_router,
    redirect,
)

router = make_router()
log = logging.getLogger(__name__)
# States whose file has been answered with a summary in the connection's folder.
ANSWERED = frozenset({"processed", "partial", "failed", "duplicate"})
RETRYABLE = frozenset({"failed", "dead"})
Retry = Callable[[Actor, int], object]
_CHUNK = 64 * 1024
_KINDS: dict[str, tuple[Callable[[str], str], str]] = {
    "summary": (names.summary_name, "application/json"),
    "errors": (names.errors_name, "application/gzip"),
}


def retry_hook(console: Console) -> Retry | None:
    """How to retry a file by hand, if the pipeline offers it (looked up by name: the
    console does not depend on the pipeline being there)."""
    app = console.dropyard
    own = getattr(app, "retry", None)
    if callable(own):
        return cast(Retry, own)
    again = getattr(getattr(app, "processor", None), "retry", None)
    if not callable(again):
        return None
    enqueue = getattr(getattr(app, "jobs", None), "enqueue_file", None)

    def retry(_actor: Actor, file_id: int) -> None:
        again(file_id)
        if callable(enqueue):
            try:
                enqueue(file_id)
            except Exception:  # the file is `received` again: the queue's sweep takes it
                log.warning("could not enqueue file %s after a retry by hand", file_id)

    return retry


@router.get("/connections/{connection_id}/history")
def history(request: Request, console: ConsoleDep, who: SignedIn, connection_id: Id) -> Response:
    app = console.dropyard
    connection = app.connections.get(who.actor, connection_id)
    files = app.files.list_files(who.actor, connection_id=connection.id)
    return console.render(
        request,
        "history.html",
        visitor=who,
        connection=connection,
        files=files,
        answered=ANSWERED,
        can_retry=retry_hook(console) is not None and who.can_edit,
        retryable=RETRYABLE,
    )


@router.get("/connections/{connection_id}/files/{file_id}")
def file_page(
    request: Request, console: ConsoleDep, who: SignedIn, connection_id: Id, file_id: Id
) -> Response:
    connection = console.dropyard.connections.get(who.actor, connection_id)
    view, events = _file(console, who, connection_id, file_id)
    return console.render(
        request,
        "file.html",
        visitor=who,
        connection=connection,
        file=view,
        events=events,
        answered=ANSWERED,
        can_retry=retry_hook(console) is not None and who.can_edit,
        retryable=RETRYABLE,
    )


@router.get("/connections/{connection_id}/files/{file_id}/{kind}")
def download(
    console: ConsoleDep,
    who: SignedIn,
    connection_id: Id,
    file_id: Id,
    kind: Literal["summary", "errors"],
) -> Response:
    view, _ = _file(console, who, connection_id, file_id)
    name_of, media_type = _KINDS[kind]
    name = name_of(view.name)
    handle = console.dropyard.files.open_folder_file(connection_id, name)
    return StreamingResponse(
        _chunks(handle),
        media_type=media_type,
        headers={"Content-Disposition": _attachment(name)},
    )


@router.post("/connections/{connection_id}/files/{file_id}/retry")
def retry(
    request: Request,
    console: ConsoleDep,
    who: SignedIn,
    form: Posted,
    connection_id: Id,
    file_id: Id,
) -> Response:
    hook = retry_hook(console)
    if hook is None:
        raise NotFound("retrying by hand is not available")
    who.actor.require_role("admin")
    view, _ = _file(console, who, connection_id, file_id)
    hook(who.actor, view.id)
    console.leave(request, notice=f"File '{view.name}' will be processed again.")
    return redirect(f"/connections/{connection_id}/history")


def _file(
    console: Console, who: Visitor, connection_id: int, file_id: int
) -> tuple[FileView, list[EventView]]:
    view, events = console.dropyard.files.get(who.actor, file_id)
    if view.connection_id != connection_id:
        raise NotFound(f"file {file_id} not found")
    return view, events


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _attachment(name: str) -> str:
    plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"
