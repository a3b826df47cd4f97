"""The token's own account, its users and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from dropyard.web.api.deps import CallerDep
from dropyard.web.api.schemas import (
    AccountOut,
    TokenCreate,
    TokenCreated,
    UserCreate,
    UserCreated,
    UserOut,
)

router = APIRouter(tags=["account"])


@router.get("/account")
def get_account(who: CallerDep) -> AccountOut:
    return AccountOut.model_validate(who.app.accounts.get_account(who.actor, who.account_id))


@router.get("/users")
def list_users(who: CallerDep) -> list[UserOut]:
    users = who.app.accounts.list_users(who.actor, account=who.account_id)
    return [UserOut.model_validate(row) for row in users]


@router.post("/users", status_code=201)
def create_user(body: UserCreate, who: CallerDep) -> UserCreated:
    made = who.app.accounts.create_user(
        who.actor, account=who.account_id, email=body.email, role=body.role
    )
    return UserCreated(user=UserOut.model_validate(made.user), password=made.password or "")


@router.post("/tokens", status_code=201)
def create_token(body: TokenCreate, who: CallerDep) -> TokenCreated:
    made = who.app.accounts.create_token(
        who.actor, account=who.account_id, name=body.name, role=body.role
    )
    return TokenCreated(
        id=made.token.id,
        name=made.token.name,
        role=made.token.role,
        prefix=made.token.prefix,
        created_at=made.token.created_at,
        token=made.secret,
    )


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, who: CallerDep) -> Response:
    who.app.accounts.revoke_token(who.actor, token_id)
    return Response(status_code=204)
