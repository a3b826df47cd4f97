"""Who calls: a Bearer token becomes the `Caller` every route works with.

The account a route acts on is always the token's; no request names one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dropyard.accounts.actors import Actor
from dropyard.app import Dropyard
from dropyard.errors import Unauthenticated
from dropyard.web.api.wizard_state import StateCodec

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token (`dy_...`) made by an admin with POST /api/v1/tokens",
)


@dataclass(frozen=True)
class Caller:
    """The Dropyard, the authenticated actor and its account."""

    app: Dropyard
    actor: Actor
    account_id: int


def dropyard(request: Request) -> Dropyard:
    return cast(Dropyard, request.app.state.dropyard)


def wizard_states(request: Request) -> StateCodec:
    return cast(StateCodec, request.app.state.wizard_states)


def caller(
    request: Request,
    app: Annotated[Dropyard, Depends(dropyard)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None:
        raise Unauthenticated("an API token is required: send 'Authorization: Bearer <token>'")
    address = request.client.host if request.client else "unknown"
    actor = app.accounts.authenticate_token(credentials.credentials, source=f"api {address}")
    if actor.account_id is None:
        raise Unauthenticated("invalid API token")
    return Caller(app=app, actor=actor, account_id=actor.account_id)


def admin(who: Annotated[Caller, Depends(caller)]) -> Caller:
    """For routes that only lead to a change (the wizard): refuse early, not at the end."""
    who.actor.require_role("admin")
    return who


CallerDep = Annotated[Caller, Depends(caller)]
AdminDep = Annotated[Caller, Depends(admin)]
StatesDep = Annotated[StateCodec, Depends(wizard_states)]
