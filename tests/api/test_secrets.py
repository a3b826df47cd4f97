"""Secrets never reach the logs, and appear only in the answer that made them."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import V1, Tenant, create, push_body

REMOTE_PASSWORD = "Remote-Only-Secret-42"


def test_no_secret_in_logs_or_later_answers(
    client: TestClient, acme: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = acme.auth()
    made = create(client, acme, push_body())
    hosted = made["credential"]["password"]
    user = client.post(f"{V1}/users", json={"email": "ops@acme.example"}, headers=auth).json()
    token = client.post(f"{V1}/tokens", json={"name": "ci", "role": "viewer"}, headers=auth).json()
    remote = client.post(
        f"{V1}/credentials",
        json={
            "kind": "remote_password",
            "name": "theirs",
            "username": "dy",
            "password": REMOTE_PASSWORD,
        },
        headers=auth,
    )
    assert remote.status_code == 201
    ident = made["credential"]["credential"]["id"]
    rotated = client.post(f"{V1}/credentials/{ident}/rotate", json={}, headers=auth).json()
    # A request that fails validation must not echo the secret it carried either.
    refused = client.post(
        f"{V1}/credentials",
        json={"kind": "hosted_password", "name": "x", "password": REMOTE_PASSWORD},
        headers=auth,
    )
    assert refused.status_code == 422
    bad_type = client.post(
        f"{V1}/credentials",
        json={
            "kind": "remote_password",
            "name": "y",
            "username": "dy",
            "password": ["Not-A-String-Secret"],
        },
        headers=auth,
    )
    assert bad_type.status_code == 422
    assert "Not-A-String-Secret" not in bad_type.text

    secrets = [
        hosted,
        user["password"],
        token["token"],
        rotated["password"],
        REMOTE_PASSWORD,
        acme.tokens["admin"],
    ]
    assert all(secrets)
    assert REMOTE_PASSWORD not in remote.text + refused.text
    later = "".join(
        client.get(V1 + path, headers=auth).text
        for path in (
            "/credentials",
            f"/credentials/{ident}",
            "/users",
            "/connections",
            f"/connections/{made['connection']['id']}",
        )
    )
    assert caplog.records  # the capture works: the HTTP client logs each request
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in later
