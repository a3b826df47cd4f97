"""The connection wizard as pages: Direction → Type → Method → Credentials → Review.

The one state machine (`connections/wizard.py`) decides everything; this module only
turns its options into forms and forms into its input. The state travels in a hidden
field, sealed (encrypted and authenticated) for this session and account: it may hold
the partner's password, and a changed or foreign state is refused. Without JavaScript
the method step redraws its detail fields when "Update fields" is pressed (or when Next
is pressed after the method changed); with it, a change redraws them at once.

The review of a pull or deliver connection tests the partner's server live and shows
its host key (or certificate) and each check; a hidden field carries the key shown to
"Create", which pins it only if the server still presents it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import Response

from dropyard.connections import trust, wizard
from dropyard.connections.rules import CREDENTIAL_KIND_LABELS
from dropyard.connections.service import Created
from dropyard.connections.wizard import NewCredential, WizardContext, WizardState
from dropyard.credentials.keys import parse_public_key
from dropyard.errors import Conflict, Invalid
from dropyard.probing import create_pinned, probe_state, review_pin
from dropyard.web.ui.console import (
    Admin,
    Console,
    ConsoleDep,
    Id,
    Posted,
    SignedIn,
    Visitor,
    last,
    make_router,
    redirect,
    text,
)
from dropyard.web.ui.forms import details_from, field_views
from dropyard.web.ui.labels import credential_label

router = make_router()
PATH = "/connections/new"
ACTIONS = ("next", "back", "refresh", "create")
_REMOTE = ("remote_password", "remote_key_pair")
_NO_CREDENTIAL = {
    "push": "This connection takes no credential: its drop address is generated when you "
    "create it.",
    "deliver": "This connection takes no credential: files are mailed through Dropyard's "
    "own relay.",
}
_REFRESHED = "The detail fields now match the method you chose; check them, then press Next."


def _purpose(visitor: Visitor) -> str:
    return f"wizard:{visitor.session.sid}:{visitor.account_id}"


def _context(console: Console, visitor: Visitor) -> WizardContext:
    return console.dropyard.connections.wizard_context(visitor.actor, account=visitor.account_id)


@router.get(PATH)
def start(request: Request, console: ConsoleDep, who: Admin) -> Response:
    return _page(request, console, who, wizard.start(), _context(console, who))


@router.post(PATH)
def step(request: Request, console: ConsoleDep, who: Admin, form: Posted) -> Response:
    sealed = console.sealer.open(text(form, "state"), purpose=_purpose(who))
    try:
        state = WizardState.from_dict(sealed)
    except Invalid:
        return console.render(
            request,
            "error.html",
            status=400,
            title="The wizard has expired",
            message="This form is from another session or was changed. Nothing was "
            "created; please start again.",
            link=(PATH, "Start again"),
        )
    action = text(form, "action")
    ctx = _context(console, who)
    if action == "back":
        return _page(request, console, who, wizard.back(state), ctx)
    if state.step == "method" and (action == "refresh" or _combination_changed(form)):
        note = None if action == "refresh" else _REFRESHED
        return _page(request, console, who, state, ctx, form=form, note=note)
    if action == "create" and state.step == "review":
        return _create(request, console, who, state, ctx, pin=text(form, "pin") or None)
    if action != "next" or state.step == "review":
        return _page(request, console, who, state, ctx)
    try:
        moved = wizard.submit(state, _step_input(state, form), ctx)
        _check_key(moved)
    except Invalid as exc:
        errors = exc.errors or {"input": exc.message}
        return _page(request, console, who, state, ctx, form=form, errors=errors, status=422)
    return _page(request, console, who, moved, ctx)


@router.get("/connections/{connection_id}/created")
def created(request: Request, console: ConsoleDep, who: SignedIn, connection_id: Id) -> Response:
    """The one time the provisioned secret is shown; reloading shows the connection."""
    connection = console.dropyard.connections.get(who.actor, connection_id)
    shown = console.take(request, target=request.url.path)
    if shown is None:
        return redirect(f"/connections/{connection.id}")
    return console.render(
        request, "created.html", connection=connection, shown=shown, notice=shown.get("notice")
    )


# -- steps ------------------------------------------------------------------------------


def _combination_changed(form: FormData) -> bool:
    chosen = f"{text(form, 'method')}:{text(form, 'methodology')}"
    return bool(text(form, "shown")) and chosen != text(form, "shown")


def _step_input(state: WizardState, form: FormData) -> dict[str, Any]:
    """The current step's form as the wizard's input."""
    if state.step == "direction":
        return {"name": text(form, "name"), "direction": text(form, "direction") or None}
    if state.step == "type":
        return {"data_type": text(form, "data_type") or None}
    if state.step == "method":
        return {
            "method": text(form, "method") or None,
            "methodology": text(form, "methodology") or None,
            "details": details_from(form),
        }
    mode = text(form, "credential_mode")
    if mode == "existing":
        chosen = text(form, "credential_id")
        return {"credential_id": chosen} if chosen else {}
    if mode != "new":
        return {}
    kind = text(form, "new.kind")
    new: dict[str, Any] = {"kind": kind or None, "name": text(form, "new.name")}
    if kind == "hosted_public_key":
        new["public_key"] = text(form, "new.public_key")
    if kind in _REMOTE:
        new["username"] = text(form, "new.username")
    if kind == "remote_password":
        typed = text(form, "new.password")
        before = state.credential
        if not typed and isinstance(before, NewCredential) and before.password:
            typed = before.password  # entered before going back: kept, never shown again
        new["password"] = typed or None
    return {"new": new}


def _check_key(state: WizardState) -> None:
    """A pasted key is refused at its step, not only when the connection is created."""
    choice = state.credential
    if isinstance(choice, NewCredential) and choice.kind == "hosted_public_key":
        try:
            parse_public_key(choice.public_key or "")
        except Invalid as exc:
            raise Invalid(exc.message, field="new.public_key") from None


def _create(
    request: Request,
    console: Console,
    who: Visitor,
    state: WizardState,
    ctx: WizardContext,
    *,
    pin: str | None,
) -> Response:
    try:
        made = create_pinned(
            console.dropyard, who.actor, account=who.account_id, state=state, pin=pin
        )
    except (Conflict, Invalid) as exc:
        if exc.field != "pin":
            return _refused(request, console, who, state, ctx, exc)
        # The server's key changed since the review: review again, with what it shows now.
        return _page(request, console, who, state, ctx, errors={"pin": exc.message}, status=409)
    console.leave(request, notice=f"Connection '{made.connection.name}' created.", **_shown(made))
    return redirect(f"/connections/{made.connection.id}/created")


def _refused(
    request: Request,
    console: Console,
    who: Visitor,
    state: WizardState,
    ctx: WizardContext,
    exc: Conflict | Invalid,
) -> Response:
    """A refusal of create, shown at the step whose answer it is about."""
    if isinstance(exc, Conflict):  # the new credential's name is taken
        field = "new.name" if exc.field == "name" else "credential"
        return _back_to(request, console, who, state, ctx, "credentials", {field: exc.message})
    errors = exc.errors or {"input": exc.message}
    if "name" in errors:
        return _back_to(request, console, who, state, ctx, "direction", errors)
    if errors.keys() & {"public_key", "credential", "credential_id"}:
        keyed = {("new.public_key" if k == "public_key" else k): v for k, v in errors.items()}
        return _back_to(request, console, who, state, ctx, "credentials", keyed)
    return _page(request, console, who, state, ctx, errors=errors, status=422)


def _shown(made: Created) -> dict[str, Any]:
    """What the created page shows once."""
    connection = made.connection
    shown: dict[str, Any] = {
        "target": f"/connections/{connection.id}/created",
        "email_address": connection.email_address,
    }
    provisioned = made.provisioned
    if provisioned is not None:
        credential = provisioned.credential
        shown.update(
            credential_name=credential.name,
            kind=credential.kind,
            login=credential.login or credential.username,
            password=provisioned.password,
            public_key=credential.public_key,
        )
    return shown


def _back_to(
    request: Request,
    console: Console,
    who: Visitor,
    state: WizardState,
    ctx: WizardContext,
    step_name: str,
    errors: Mapping[str, str],
) -> Response:
    while state.step != step_name and state.step != wizard.STEPS[0]:
        state = wizard.back(state)
    return _page(request, console, who, state, ctx, errors=errors, status=422)


# -- the page ---------------------------------------------------------------------------


def _page(
    request: Request,
    console: Console,
    who: Visitor,
    state: WizardState,
    ctx: WizardContext,
    *,
    form: FormData | None = None,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
    note: str | None = None,
) -> Response:
    errors = dict(errors or {})
    options = wizard.options(state, ctx)
    typed = {key: last(form, key) or "" for key in form} if form is not None else None
    page: dict[str, Any] = {
        "step": state.step,
        "steps": options.steps,
        "current": wizard.STEPS.index(state.step),
        "sealed": console.sealer.seal(state.to_dict(), purpose=_purpose(who)),
        "can_go_back": options.can_go_back,
        "errors": errors,
        "note": note,
    }
    selected = dict(options.selected)
    if state.step == "direction":
        page.update(
            directions=options.choices["direction"],
            name=typed["name"] if typed else (state.name or ""),
            direction=typed.get("direction") if typed else state.direction,
        )
    elif state.step == "type":
        page.update(
            data_types=options.choices["data_type"],
            data_type=typed.get("data_type") if typed else state.data_type,
        )
    elif state.step == "method":
        page.update(_method_page(options, selected, state, form, errors))
    elif state.step == "credentials":
        page.update(_credentials_page(console, who, options, selected, state, typed))
    else:
        page.update(items=(), uri="", uri_note=None, key_line=None, probe=None, pin="")
        try:
            review = wizard.review(state, ctx)
        except Invalid as exc:
            errors.update(exc.errors or {"input": exc.message})
        else:
            page.update(items=review.items, uri=review.uri, uri_note=review.uri_note)
            page.update(_probe_page(console, who, state))
    return console.render(request, "wizard.html", status=status, visitor=who, **page)


def _probe_page(console: Console, who: Visitor, state: WizardState) -> dict[str, Any]:
    """The live test of the partner's server a review shows, and the key it will pin."""
    report = probe_state(console.dropyard, who.actor, account=who.account_id, state=state)
    if report is None or state.method is None or state.methodology is None:
        return {}
    line = trust.fingerprint_line(
        state.method, state.methodology, state.details, report.fingerprint
    )
    return {"key_line": line, "probe": report, "pin": review_pin(state, report) or ""}


def _method_page(
    options: wizard.StepOptions,
    selected: Mapping[str, Any],
    state: WizardState,
    form: FormData | None,
    errors: Mapping[str, str],
) -> dict[str, Any]:
    by_method = {str(m): choices for m, choices in options.methodologies_by_method.items()}
    method = text(form, "method") if form is not None else ""
    if method not in by_method:
        method = str(selected["method"])
    offered = [choice.value for choice in by_method[method]]
    methodology = text(form, "methodology") if form is not None else ""
    if methodology not in offered:
        methodology = selected["methodology"] if selected["methodology"] in offered else offered[0]
    # Every methodology of the direction, marked with the methods that offer it, so that a
    # script can switch without a round trip; without one, "Update fields" redraws.
    methodologies: dict[str, dict[str, Any]] = {}
    for m, choices in by_method.items():
        for choice in choices:
            entry = methodologies.setdefault(choice.value, {"choice": choice, "methods": []})
            entry["methods"].append(m)
    answers: Mapping[str, Any] = details_from(form) if form is not None else state.details
    fields = {f"{m}:{mt}": specs for (m, mt), specs in options.fields_by_combination.items()}
    current = f"{method}:{methodology}"
    return {
        "methods": options.choices["method"],
        "method": method,
        "methodologies": [
            {**entry, "offered": method in entry["methods"], "methods": " ".join(entry["methods"])}
            for entry in methodologies.values()
        ],
        "methodology": methodology,
        "shown": current,
        "fields": field_views(fields[current], answers, errors),
        "templates": [
            {"combination": key, "fields": field_views(specs, answers, {})}
            for key, specs in fields.items()
            if key != current
        ],
    }


def _credentials_page(
    console: Console,
    who: Visitor,
    options: wizard.StepOptions,
    selected: Mapping[str, Any],
    state: WizardState,
    typed: Mapping[str, str] | None,
) -> dict[str, Any]:
    views = {
        view.id: view
        for view in console.dropyard.credentials.list_credentials(who.actor)
        if view.id in options.usable_credentials
    }
    existing = [(str(i), credential_label(views[i])) for i in options.usable_credentials]
    new: Mapping[str, Any] = selected.get("new") or {}
    if typed is not None:
        mode = typed.get("credential_mode", "")
        chosen = typed.get("credential_id", "")
        new = {k.removeprefix("new."): v for k, v in typed.items() if k.startswith("new.")}
    else:
        mode = "existing" if "credential_id" in selected else ("new" if new else "")
        chosen = str(selected.get("credential_id", ""))
    kinds = options.choices["kind"]
    return {
        "credential_required": options.credential_required,
        "no_credential": _NO_CREDENTIAL.get(state.methodology or "", ""),
        "existing": existing,
        "mode": mode or ("new" if not existing else ""),
        "chosen": chosen,
        "kinds": kinds,
        "kind_labels": CREDENTIAL_KIND_LABELS,
        "new_kind": new.get("kind") or (kinds[0].value if kinds else ""),
        "new_name": new.get("name") or f"{state.name} login",
        "new_public_key": new.get("public_key") or "",
        "new_username": new.get("username") or "",
        "password_kept": isinstance(state.credential, NewCredential)
        and bool(state.credential.password),
        "hosted": state.methodology in ("push", "hosted"),
    }
