"""Who may call: no token, a bad or revoked token, roles, and the error documents."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from dropyard.app import Dropyard
from dropyard.errors import Transient
from dropyard.web.api.app import create_app
from tests.api.helpers import V1, Tenant, create, public_key, push_body

ROUTES = [
    ("GET", "/account"),
    ("GET", "/users"),
    ("GET", "/connections"),
    ("GET", "/credentials"),
    ("GET", "/campaigns"),
    ("POST", "/connections"),
    ("POST", "/wizard/start"),
    ("DELETE", "/tokens/1"),
]


def test_no_token_or_a_bad_one_is_401(client: TestClient, acme: Tenant) -> None:
    almost = acme.tokens["admin"][:-4] + "AAAA"
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {almost}"},
        {"Authorization": f"Basic {acme.tokens['admin']}"},
        {"Authorization": "Bearer dy_abcdefghijkm_" + "x" * 43},
    ]
    for method, path in ROUTES:
        for headers in bad_headers:
            answer = client.request(method, V1 + path, headers=headers, json={})
            assert answer.status_code == 401, (method, path, headers)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
            assert answer.json()["error"] == "unauthenticated"
    assert client.get(f"{V1}/account", headers=acme.auth()).status_code == 200


def test_a_revoked_token_is_401(client: TestClient, acme: Tenant, other: Tenant) -> None:
    made = client.post(
        f"{V1}/tokens", json={"name": "script", "role": "viewer"}, headers=acme.auth()
    )
    assert made.status_code == 201
    token = made.json()["token"]
    assert token.startswith("dy_")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{V1}/account", headers=headers).status_code == 200
    # Another account's admin does not see it; a viewer may not revoke it.
    token_id = made.json()["id"]
    assert client.delete(f"{V1}/tokens/{token_id}", headers=other.auth()).status_code == 404
    assert client.delete(f"{V1}/tokens/{token_id}", headers=acme.auth("viewer")).status_code == 403
    assert client.get(f"{V1}/account", headers=headers).status_code == 200

    assert client.delete(f"{V1}/tokens/{token_id}", headers=acme.auth()).status_code == 204
    answer = client.get(f"{V1}/account", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["message"] == "invalid API token"


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_viewers_and_members_read_but_do_not_write(
    client: TestClient, acme: Tenant, role: str
) -> None:
    made = create(client, acme, push_body())
    cid, credential = made["connection"]["id"], made["credential"]["credential"]["id"]
    writes: list[tuple[str, str, Any]] = [
        ("POST", "/users", {"email": "new@acme.example", "role": "viewer"}),
        ("POST", "/tokens", {"name": "more", "role": "viewer"}),
        ("DELETE", f"/tokens/{acme.token_ids['admin']}", None),
        ("POST", "/credentials", {"kind": "hosted_password", "name": "another"}),
        (
            "POST",
            "/credentials",
            {"kind": "hosted_public_key", "name": "k", "public_key": public_key()},
        ),
        ("PATCH", f"/credentials/{credential}", {"name": "renamed"}),
        ("POST", f"/credentials/{credential}/rotate", {}),
        ("POST", f"/credentials/{credential}/revoke", None),
        ("POST", "/wizard/start", None),
        ("POST", "/wizard/submit", {"state": {}, "data": {}}),
        ("POST", "/connections", push_body("Second")),
        ("PATCH", f"/connections/{cid}", {"details": {"file_pattern": "*.csv"}}),
        ("POST", f"/connections/{cid}/pause", None),
        ("POST", f"/connections/{cid}/archive", None),
        (
            "POST",
            "/campaigns",
            {"id": 7, "name": "C", "currency": "USD", "payout_rate": "0.1", "trackers": [70]},
        ),
        ("POST", "/partners", {"id": 8, "name": "P"}),
        ("POST", "/partners/8/join", {"campaign_id": 7}),
    ]
    for method, path, body in writes:
        answer = client.request(method, V1 + path, json=body, headers=acme.auth(role))
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"] == "forbidden"
    for path in (
        "/account",
        "/users",
        "/credentials",
        f"/credentials/{credential}",
        "/connections",
        f"/connections/{cid}",
        f"/connections/{cid}/files",
        "/campaigns",
        "/partners",
    ):
        assert client.get(V1 + path, headers=acme.auth(role)).status_code == 200, path
    # Nothing was written.
    connection = client.get(f"{V1}/connections/{cid}", headers=acme.auth()).json()
    assert connection["status"] == "active"
    assert connection["details"]["file_pattern"] == "*"
    assert len(client.get(f"{V1}/credentials", headers=acme.auth()).json()) == 1
    assert client.get(f"{V1}/campaigns", headers=acme.auth()).json() == []
    assert client.get(f"{V1}/account", headers=acme.auth()).status_code == 200


def test_openapi_documents_every_route(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    paths = document["paths"]
    expected = {
        "/api/v1/account": {"get"},
        "/api/v1/users": {"get", "post"},
        "/api/v1/tokens": {"post"},
        "/api/v1/tokens/{token_id}": {"delete"},
        "/api/v1/credentials": {"get", "post"},
        "/api/v1/credentials/{credential_id}": {"get", "patch"},
        "/api/v1/credentials/{credential_id}/rotate": {"post"},
        "/api/v1/credentials/{credential_id}/revoke": {"post"},
        "/api/v1/wizard/start": {"post"},
        "/api/v1/wizard/submit": {"post"},
        "/api/v1/wizard/back": {"post"},
        "/api/v1/wizard/review": {"post"},
        "/api/v1/connections": {"get", "post"},
        "/api/v1/connections/{connection_id}": {"get", "patch"},
        "/api/v1/connections/{connection_id}/pause": {"post"},
        "/api/v1/connections/{connection_id}/resume": {"post"},
        "/api/v1/connections/{connection_id}/archive": {"post"},
        "/api/v1/connections/{connection_id}/files": {"get"},
        "/api/v1/files/{file_id}": {"get"},
        "/api/v1/campaigns": {"get", "post"},
        "/api/v1/partners": {"get", "post"},
        "/api/v1/partners/{partner_id}/join": {"post"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path
    create = paths["/api/v1/connections"]["post"]
    assert {"201", "401", "403", "422"} <= set(create["responses"])
    assert create["security"] == [{"token": []}]
    schemas = document["components"]["schemas"]
    assert {"ConnectionOut", "ProvisionedOut", "ErrorOut", "WizardOut"} <= set(schemas)
    assert client.get("/api/docs").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}


def test_error_documents(app: Dropyard, acme: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    client = TestClient(create_app(app), raise_server_exceptions=False)
    missing = client.get(f"{V1}/nowhere", headers=acme.auth())
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    broken = client.post(
        f"{V1}/connections",
        content=b"{not json",
        headers={**acme.auth(), "Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["error"] == "invalid"

    def busy(*_args: Any, **_kwargs: Any) -> None:
        raise Transient("the database is busy")

    monkeypatch.setattr(app.connections, "list_connections", busy)
    answer = client.get(f"{V1}/connections", headers=acme.auth())
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "30"
    assert answer.json()["message"] == "the database is busy"

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("secret internals at /srv/dropyard")

    monkeypatch.setattr(app.connections, "list_connections", crash)
    answer = client.get(f"{V1}/connections", headers=acme.auth())
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal", "message": "internal error", "errors": {}}
    assert "secret internals" not in answer.text
    assert "Traceback" not in answer.text
