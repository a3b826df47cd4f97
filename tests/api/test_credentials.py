"""Credentials over HTTP: each kind, secrets shown once, rename, rotate, revoke."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from dropyard.app import Dropyard
from tests.api.helpers import V1, Tenant, public_key

REMOTE_PASSWORD = "their-Secret-9876"


def post(client: TestClient, tenant: Tenant, path: str, body: Any, code: int) -> dict[str, Any]:
    answer = client.post(V1 + path, json=body, headers=tenant.auth())
    assert answer.status_code == code, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_hosted_password_is_shown_once(app: Dropyard, client: TestClient, acme: Tenant) -> None:
    made = post(client, acme, "/credentials", {"kind": "hosted_password", "name": "drop"}, 201)
    login, password = made["username"], made["password"]
    assert login == made["credential"]["login"]
    assert len(password) >= 20
    assert app.credentials.check_password(login=login, password=password) is not None
    for path in ("/credentials", f"/credentials/{made['credential']['id']}"):
        answer = client.get(V1 + path, headers=acme.auth())
        assert answer.status_code == 200
        assert password not in answer.text
        assert '"password"' not in answer.text


def test_each_kind_and_what_it_takes(client: TestClient, acme: Tenant) -> None:
    key = public_key()
    keyed = post(
        client,
        acme,
        "/credentials",
        {"kind": "hosted_public_key", "name": "laptop", "public_key": key},
        201,
    )
    assert keyed["password"] is None
    assert keyed["credential"]["fingerprints"][0].startswith("SHA256:")

    remote = post(
        client,
        acme,
        "/credentials",
        {
            "kind": "remote_password",
            "name": "theirs",
            "username": "dy",
            "password": REMOTE_PASSWORD,
        },
        201,
    )
    assert remote["username"] == "dy"
    assert remote["password"] is None

    pair = post(
        client,
        acme,
        "/credentials",
        {"kind": "remote_key_pair", "name": "pair", "username": "dy"},
        201,
    )
    assert pair["public_key"].startswith("ssh-ed25519 ")
    assert "PRIVATE" not in str(pair)

    refusals: list[tuple[dict[str, Any], str]] = [
        (
            {"kind": "hosted_public_key", "name": "bad", "public_key": "ssh-rsa AAAAB3Nza"},
            "public_key",
        ),
        ({"kind": "hosted_public_key", "name": "none"}, "public_key"),
        ({"kind": "hosted_password", "name": "mine", "password": "chosen-by-me-123"}, "password"),
        ({"kind": "hosted_password", "name": "mine", "username": "me"}, "username"),
        ({"kind": "remote_password", "name": "half", "username": "dy"}, "password"),
        ({"kind": "remote_key_pair", "name": "nobody"}, "username"),
        ({"kind": "dsa", "name": "old"}, "kind"),
        ({"kind": "hosted_password", "name": ""}, "name"),
    ]
    for body, field in refusals:
        answer = client.post(f"{V1}/credentials", json=body, headers=acme.auth())
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.json()["errors"], (body, answer.json())
    duplicate = client.post(
        f"{V1}/credentials", json={"kind": "hosted_password", "name": "LAPTOP"}, headers=acme.auth()
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"] == {"name": "a credential named 'LAPTOP' already exists"}

    listed = client.get(f"{V1}/credentials", headers=acme.auth())
    assert [c["name"] for c in listed.json()] == ["laptop", "theirs", "pair"]
    assert REMOTE_PASSWORD not in listed.text


def test_rename_rotate_revoke(app: Dropyard, client: TestClient, acme: Tenant) -> None:
    made = post(client, acme, "/credentials", {"kind": "hosted_password", "name": "drop"}, 201)
    ident, login, first = made["credential"]["id"], made["username"], made["password"]

    renamed = client.patch(
        f"{V1}/credentials/{ident}", json={"name": "drop box"}, headers=acme.auth()
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "drop box"
    assert renamed.json()["login"] == login

    rotated = post(client, acme, f"/credentials/{ident}/rotate", {"overlap_hours": 1}, 200)
    second = rotated["password"]
    assert second
    assert second != first
    assert app.credentials.check_password(login=login, password=first) is not None

    third = post(client, acme, f"/credentials/{ident}/rotate", {"overlap_hours": 0}, 200)[
        "password"
    ]
    assert app.credentials.check_password(login=login, password=first) is None
    assert app.credentials.check_password(login=login, password=third) is not None
    assert third not in client.get(f"{V1}/credentials/{ident}", headers=acme.auth()).text

    for body, field in (
        ({"password": "mine-1234567890"}, "password"),
        ({"overlap_hours": -1}, "overlap_hours"),
        ({"public_key": public_key()}, "public_key"),
    ):
        answer = client.post(f"{V1}/credentials/{ident}/rotate", json=body, headers=acme.auth())
        assert answer.status_code == 422, answer.text
        assert field in answer.json()["errors"]

    remote = post(
        client,
        acme,
        "/credentials",
        {
            "kind": "remote_password",
            "name": "theirs",
            "username": "dy",
            "password": REMOTE_PASSWORD,
        },
        201,
    )
    answer = client.post(
        f"{V1}/credentials/{remote['credential']['id']}/rotate", json={}, headers=acme.auth()
    )
    assert answer.status_code == 422
    assert "password" in answer.json()["errors"]

    revoked = post(client, acme, f"/credentials/{ident}/revoke", None, 200)
    assert revoked["active"] is False
    assert revoked["revoked_at"] is not None
    answer = client.post(f"{V1}/credentials/{ident}/rotate", json={}, headers=acme.auth())
    assert answer.status_code == 409
    assert client.get(f"{V1}/credentials/424242", headers=acme.auth()).status_code == 404
