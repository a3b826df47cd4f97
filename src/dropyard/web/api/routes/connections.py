"""Connections of the token's account: create (from a wizard state or in one call), list,
read, edit details, pause, resume, archive; test a remote one live and approve its
server's new key; and each connection's file history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query

from dropyard.connections import wizard
from dropyard.connections.rules import DataType
from dropyard.connections.service import STATUSES
from dropyard.connections.wizard import WizardState
from dropyard.errors import Invalid
from dropyard.probing import create_pinned
from dropyard.web.api.deps import AdminDep, Caller, CallerDep, StatesDep
from dropyard.web.api.schemas import (
    ApproveIn,
    ConnectionCreate,
    ConnectionCreated,
    ConnectionOut,
    ConnectionPatch,
    FileOut,
    ProbeOut,
    ProvisionedOut,
)

router = APIRouter(tags=["connections"])


def _rekey(exc: Invalid, rename: Callable[[str], str]) -> Invalid:
    """The same error, its fields named as the caller sent them."""
    if not exc.errors:
        return exc
    return Invalid.of({rename(key): text for key, text in exc.errors.items()})


def _prefixed(old: str, new: str) -> Callable[[str], str]:
    def rename(key: str) -> str:
        return new + key.removeprefix(old) if key == old or key.startswith(f"{old}.") else key

    return rename


def _detail_key(key: str) -> str:
    return key if key == "details" or key.startswith("details.") else f"details.{key}"


def _walk(body: ConnectionCreate, who: Caller) -> WizardState:
    """The one-call document through the wizard's steps, as a person would fill them."""
    ctx = who.app.connections.wizard_context(who.actor, account=who.account_id)
    credential: dict[str, Any] = {}
    if body.credential_id is not None:
        credential["credential_id"] = body.credential_id
    if body.new_credential is not None:
        new = body.new_credential.model_dump(exclude_none=True, exclude={"password"})
        if body.new_credential.password is not None:
            new["password"] = body.new_credential.password.get_secret_value()
        credential["new"] = new
    steps: tuple[dict[str, Any], ...] = (
        {"name": body.name, "direction": body.direction},
        {"data_type": body.data_type},
        {"method": body.method, "methodology": body.methodology, "details": body.details},
        credential,
    )
    state = wizard.start()
    for data in steps:
        try:
            state = wizard.submit(state, data, ctx)
        except Invalid as exc:
            raise _rekey(exc, _prefixed("new", "new_credential")) from None
    return state


@router.post("/connections", status_code=201)
def create_connection(
    body: ConnectionCreate, who: AdminDep, states: StatesDep
) -> ConnectionCreated:
    """Create from `state` (a wizard at its review step), or from the connection's fields
    in one call. A credential made on the way comes back with its one-time secret.
    `pin` (the fingerprint the review showed) is checked against the server once more:
    409 when it now presents another key."""
    if body.state is not None:
        both = sorted(body.flat_fields())
        if both:
            raise Invalid.of(dict.fromkeys(both, "send a wizard state or the fields, not both"))
        state = states.load(body.state, account_id=who.account_id)
        new = "new"
    else:
        state = _walk(body, who)
        new = "new_credential"
    try:
        made = create_pinned(who.app, who.actor, account=who.account_id, state=state, pin=body.pin)
    except Invalid as exc:
        # The pasted key is parsed only when the credential is made: name it as sent.
        raise _rekey(exc, _prefixed("public_key", f"{new}.public_key")) from None
    return ConnectionCreated(
        connection=ConnectionOut.model_validate(made.connection),
        credential=ProvisionedOut.of(made.provisioned) if made.provisioned else None,
    )


@router.get("/connections")
def list_connections(
    who: CallerDep,
    status: Annotated[str | None, Query(description=f"One of {', '.join(STATUSES)}")] = None,
    data_type: DataType | None = None,
) -> list[ConnectionOut]:
    if status is not None and status not in STATUSES:
        raise Invalid(f"status '{status}' must be one of {', '.join(STATUSES)}", field="status")
    views = who.app.connections.list_connections(
        who.actor, account=who.account_id, status=status, data_type=data_type
    )
    return [ConnectionOut.model_validate(view) for view in views]


@router.get("/connections/{connection_id}")
def get_connection(connection_id: int, who: CallerDep) -> ConnectionOut:
    return ConnectionOut.model_validate(who.app.connections.get(who.actor, connection_id))


@router.patch("/connections/{connection_id}")
def update_connection(connection_id: int, body: ConnectionPatch, who: CallerDep) -> ConnectionOut:
    """Change details (schedule, pattern, formats...); host, port and folder are fixed."""
    try:
        view = who.app.connections.update_details(who.actor, connection_id, changes=body.details)
    except Invalid as exc:
        raise _rekey(exc, _detail_key) from None
    return ConnectionOut.model_validate(view)


@router.post("/connections/{connection_id}/pause")
def pause_connection(connection_id: int, who: CallerDep) -> ConnectionOut:
    return ConnectionOut.model_validate(who.app.connections.pause(who.actor, connection_id))


@router.post("/connections/{connection_id}/resume")
def resume_connection(connection_id: int, who: CallerDep) -> ConnectionOut:
    return ConnectionOut.model_validate(who.app.connections.resume(who.actor, connection_id))


@router.post("/connections/{connection_id}/archive")
def archive_connection(connection_id: int, who: CallerDep) -> ConnectionOut:
    """Archived is final: the connection stops, its history stays."""
    return ConnectionOut.model_validate(who.app.connections.archive(who.actor, connection_id))


@router.post("/connections/{connection_id}/test")
def test_connection(connection_id: int, who: CallerDep) -> ProbeOut:
    """Connect to the partner's server now (pull/deliver): reachable, trusted, login,
    folder, pattern. Members and admins; a failed check is an answer, not an error."""
    who.app.connections.get(who.actor, connection_id)  # another account's: 404
    who.actor.require_role("member")
    return ProbeOut.of(who.app.remote.test(who.actor, connection_id))


@router.post("/connections/{connection_id}/approve")
def approve_connection(connection_id: int, body: ApproveIn, who: CallerDep) -> ConnectionOut:
    """Pin the host key or certificate the server presents now (after the partner
    changed it); 422 when `fingerprint` is not what it presents. Admins only."""
    who.app.connections.get(who.actor, connection_id)
    who.actor.require_role("admin")
    who.app.remote.approve(who.actor, connection_id, fingerprint=body.fingerprint)
    return ConnectionOut.model_validate(who.app.connections.get(who.actor, connection_id))


@router.get("/connections/{connection_id}/files")
def list_files(
    connection_id: int,
    who: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[FileOut]:
    """The connection's files, newest first."""
    views = who.app.files.list_files(who.actor, connection_id=connection_id, limit=limit)
    return [FileOut.model_validate(view) for view in views]
