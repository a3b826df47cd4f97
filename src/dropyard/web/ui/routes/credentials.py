"""The account's credentials: the list (what each is, which connections use it, when it
was last used), a new one, rename, rotate and revoke. A generated password, or a new key
pair's public half, is shown once on the page that follows the change."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import Request
from starlette.responses import Response

from dropyard.connections.service import ConnectionView
from dropyard.credentials.models import CREDENTIAL_KINDS
from dropyard.credentials.service import CredentialView, NewCredentialInput, Provisioned
from dropyard.errors import Conflict, Invalid
from dropyard.web.ui.console import (
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
from dropyard.web.ui.forms import prefixed

router = make_router()
# Kinds whose new secret Dropyard makes, to be shown once.
GENERATED = frozenset({"hosted_password", "remote_key_pair"})


@router.get("/credentials")
def list_page(request: Request, console: ConsoleDep, who: SignedIn) -> Response:
    return _list(request, console, who)


@router.post("/credentials")
def create(request: Request, console: ConsoleDep, who: SignedIn, form: Posted) -> Response:
    kind = text(form, "new.kind")
    spec = NewCredentialInput(
        kind=kind,
        name=text(form, "new.name"),
        public_key=text(form, "new.public_key") if kind == "hosted_public_key" else None,
        username=text(form, "new.username") if kind.startswith("remote_") else None,
        password=(text(form, "new.password") or None) if kind == "remote_password" else None,
    )
    try:
        made = console.dropyard.credentials.create(who.actor, account=who.account_id, spec=spec)
    except (Invalid, Conflict) as exc:
        errors = exc.errors if isinstance(exc, Invalid) else {exc.field or "name": exc.message}
        typed = {k: v for k, v in form.items() if isinstance(v, str) and k != "new.password"}
        return _list(
            request, console, who, errors=prefixed(errors, "new."), typed=typed, status=422
        )
    return _issued(request, console, made, f"Credential '{made.credential.name}' created.")


@router.get("/credentials/{credential_id}")
def credential_page(
    request: Request, console: ConsoleDep, who: SignedIn, credential_id: Id
) -> Response:
    view = console.dropyard.credentials.get(who.actor, credential_id)
    return _page(request, console, who, view)


@router.post("/credentials/{credential_id}/rename")
def rename(
    request: Request, console: ConsoleDep, who: SignedIn, form: Posted, credential_id: Id
) -> Response:
    app = console.dropyard
    try:
        view = app.credentials.rename(who.actor, credential_id, name=text(form, "name"))
    except (Invalid, Conflict) as exc:
        current = app.credentials.get(who.actor, credential_id)
        return _page(request, console, who, current, errors={"name": exc.message}, status=422)
    console.leave(request, notice=f"Credential renamed to '{view.name}'.")
    return redirect(f"/credentials/{view.id}")


@router.post("/credentials/{credential_id}/rotate")
def rotate(
    request: Request, console: ConsoleDep, who: SignedIn, form: Posted, credential_id: Id
) -> Response:
    app = console.dropyard
    try:
        made = app.credentials.rotate(
            who.actor,
            credential_id,
            public_key=text(form, "public_key") or None,
            password=text(form, "password") or None,
        )
    except Invalid as exc:
        current = app.credentials.get(who.actor, credential_id)
        errors = exc.errors or {"rotate": exc.message}
        return _page(request, console, who, current, errors=errors, status=422)
    hours = app.settings.credential_overlap_hours
    return _issued(
        request,
        console,
        made,
        f"Credential '{made.credential.name}' rotated; the old secret keeps working for "
        f"{hours} hours.",
    )


@router.post("/credentials/{credential_id}/revoke")
def revoke(
    request: Request, console: ConsoleDep, who: SignedIn, form: Posted, credential_id: Id
) -> Response:
    view = console.dropyard.credentials.revoke(who.actor, credential_id)
    console.leave(request, notice=f"Credential '{view.name}' revoked.")
    return redirect("/credentials")


@router.get("/credentials/{credential_id}/issued")
def issued(request: Request, console: ConsoleDep, who: SignedIn, credential_id: Id) -> Response:
    """The one time a new secret is shown; reloading shows the credential's page."""
    view = console.dropyard.credentials.get(who.actor, credential_id)
    shown = console.take(request, target=request.url.path)
    if shown is None:
        return redirect(f"/credentials/{view.id}")
    return console.render(
        request, "issued.html", visitor=who, credential=view, shown=shown, notice=shown["notice"]
    )


def _issued(request: Request, console: Console, made: Provisioned, notice: str) -> Response:
    view = made.credential
    if made.password is None and view.kind not in GENERATED:
        console.leave(request, notice=notice)
        return redirect(f"/credentials/{view.id}")
    target = f"/credentials/{view.id}/issued"
    console.leave(
        request,
        notice=notice,
        target=target,
        login=view.login or view.username,
        password=made.password,
        public_key=view.public_key,
    )
    return redirect(target)


def _used_by(console: Console, who: Visitor) -> dict[int, list[ConnectionView]]:
    used: dict[int, list[ConnectionView]] = defaultdict(list)
    for connection in console.dropyard.connections.list_connections(who.actor):
        if connection.credential_id is not None:
            used[connection.credential_id].append(connection)
    return used


def _list(
    request: Request,
    console: Console,
    who: Visitor,
    *,
    errors: dict[str, str] | None = None,
    typed: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    return console.render(
        request,
        "credentials.html",
        status=status,
        visitor=who,
        credentials=console.dropyard.credentials.list_credentials(who.actor),
        used_by=_used_by(console, who),
        kinds=CREDENTIAL_KINDS,
        errors=errors or {},
        typed=typed or {},
    )


def _page(
    request: Request,
    console: Console,
    who: Visitor,
    view: CredentialView,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return console.render(
        request,
        "credential.html",
        status=status,
        visitor=who,
        credential=view,
        used_by=_used_by(console, who).get(view.id, []),
        errors=errors or {},
        generated=view.kind in GENERATED,
    )
