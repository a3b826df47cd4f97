"""The token's account, its users and tokens."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dropyard.app import Dropyard
from tests.api.helpers import V1, Tenant


def test_own_account(client: TestClient, acme: Tenant) -> None:
    account = client.get(f"{V1}/account", headers=acme.auth("viewer")).json()
    assert account["id"] == acme.account_id
    assert account["name"] == acme.name
    assert account["kind"] == "brand"


def test_users_get_a_generated_password_once(
    app: Dropyard, client: TestClient, acme: Tenant, other: Tenant
) -> None:
    made = client.post(
        f"{V1}/users", json={"email": "Ops@Acme.example", "role": "viewer"}, headers=acme.auth()
    )
    assert made.status_code == 201, made.text
    user, password = made.json()["user"], made.json()["password"]
    assert user["email"] == "ops@acme.example"
    actor = app.accounts.authenticate_user(email=user["email"], password=password, source="test")
    assert (actor.account_id, actor.role) == (acme.account_id, "viewer")

    listed = client.get(f"{V1}/users", headers=acme.auth("viewer"))
    assert [u["email"] for u in listed.json()] == ["ops@acme.example"]
    assert password not in listed.text
    assert '"password"' not in listed.text
    assert client.get(f"{V1}/users", headers=other.auth()).json() == []

    for body, code, field in (
        ({"email": "ops@acme.example"}, 409, "email"),
        ({"email": "x y", "role": "viewer"}, 422, "email"),
        ({"email": "boss@acme.example", "role": "owner"}, 422, "role"),
        ({"email": "me@acme.example", "password": "chosen-by-me-123"}, 422, "password"),
    ):
        answer = client.post(f"{V1}/users", json=body, headers=acme.auth())
        assert answer.status_code == code, answer.text
        assert field in answer.json()["errors"]


def test_tokens_are_shown_once_and_carry_their_role(client: TestClient, acme: Tenant) -> None:
    made = client.post(
        f"{V1}/tokens", json={"name": "nightly", "role": "member"}, headers=acme.auth()
    )
    assert made.status_code == 201
    token = made.json()["token"]
    assert token.startswith(f"dy_{made.json()['prefix']}_")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{V1}/account", headers=headers).json()["id"] == acme.account_id
    denied = client.post(f"{V1}/tokens", json={"name": "x", "role": "admin"}, headers=headers)
    assert denied.status_code == 403
    assert "admin" in denied.json()["message"]
    missing = client.post(f"{V1}/tokens", json={"name": "x"}, headers=acme.auth())
    assert missing.status_code == 422
    assert missing.json()["errors"] == {"role": "Field required"}
    assert client.delete(f"{V1}/tokens/999999", headers=acme.auth()).status_code == 404
