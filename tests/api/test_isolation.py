"""Tenant isolation: another account's objects do not exist for a token, in any route."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dropyard.app import Dropyard
from tests.api.helpers import V1, Tenant, create, ids, push_body, upload


def test_another_accounts_objects_are_404_and_never_listed(
    app: Dropyard, client: TestClient, acme: Tenant, other: Tenant
) -> None:
    made = create(client, acme, push_body("Acme orders"))
    cid = made["connection"]["id"]
    credential = made["connection"]["credential_id"]
    file_id = upload(app, cid)
    campaign = {
        "id": 501,
        "name": "Acme spring",
        "currency": "EUR",
        "payout_rate": "0.1",
        "trackers": [5010],
    }
    assert client.post(f"{V1}/campaigns", json=campaign, headers=acme.auth()).status_code == 201
    partner = client.post(f"{V1}/partners", json={"id": 601, "name": "Blog"}, headers=acme.auth())
    assert partner.status_code == 201
    joined = client.post(f"{V1}/partners/601/join", json={"campaign_id": 501}, headers=acme.auth())
    assert joined.status_code == 201
    client.post(f"{V1}/users", json={"email": "a@acme.example"}, headers=acme.auth())

    requests = [
        ("GET", f"/connections/{cid}", None),
        ("PATCH", f"/connections/{cid}", {"details": {"file_pattern": "*.csv"}}),
        ("POST", f"/connections/{cid}/pause", None),
        ("POST", f"/connections/{cid}/resume", None),
        ("POST", f"/connections/{cid}/archive", None),
        ("GET", f"/connections/{cid}/files", None),
        ("GET", f"/files/{file_id}", None),
        ("GET", f"/credentials/{credential}", None),
        ("PATCH", f"/credentials/{credential}", {"name": "mine now"}),
        ("POST", f"/credentials/{credential}/rotate", {}),
        ("POST", f"/credentials/{credential}/revoke", None),
        ("DELETE", f"/tokens/{acme.token_ids['viewer']}", None),
        ("POST", "/partners/601/join", {"campaign_id": 501}),
    ]
    for method, path, body in requests:
        answer = client.request(method, V1 + path, json=body, headers=other.auth())
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"] == "not_found"
        assert "Acme" not in answer.text

    # Reusing A's credential in B's connection: not found, and nothing made.
    borrowed = push_body("Borrowed", new_credential=None, credential_id=credential)
    answer = client.post(f"{V1}/connections", json=borrowed, headers=other.auth())
    assert answer.status_code == 422
    assert "credential_id" in answer.json()["errors"]

    for path in ("connections", "credentials", "campaigns", "partners", "users"):
        listed = client.get(f"{V1}/{path}", headers=other.auth())
        assert listed.json() == [], path
        assert ids(client, acme, path), path
    assert client.get(f"{V1}/account", headers=other.auth()).json()["id"] == other.account_id

    # A's objects are untouched.
    mine = client.get(f"{V1}/connections/{cid}", headers=acme.auth()).json()
    assert (mine["status"], mine["details"]["file_pattern"]) == ("active", "*")
    view = client.get(f"{V1}/credentials/{credential}", headers=acme.auth()).json()
    assert (view["name"], view["active"]) == ("Acme orders login", True)
    assert client.get(f"{V1}/account", headers=acme.auth("viewer")).status_code == 200
