"""Connections over HTTP: the one-call create, every bad input refused with its field and
nothing written, listing, editing details, and status changes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import V1, Tenant, create, public_key, pull_body, push_body

BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "outbound with pull",
        {**push_body(), "direction": "outbound", "data_type": "reports", "methodology": "pull"},
        "methodology",
    ),
    (
        "email with hosted",
        {
            **push_body(),
            "direction": "outbound",
            "data_type": "reports",
            "method": "email",
            "methodology": "hosted",
            "new_credential": None,
        },
        "methodology",
    ),
    ("missing required detail", pull_body(host=None), "details.host"),
    ("cron that does not parse", pull_body(schedule="61 * * * *"), "details.schedule"),
    (
        "malformed public key",
        push_body(
            new_credential={
                "kind": "hosted_public_key",
                "name": "k",
                "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAbroken",
            }
        ),
        "new_credential.public_key",
    ),
    (
        "a key that is private",
        push_body(
            new_credential={
                "kind": "hosted_public_key",
                "name": "k",
                "public_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n"
                "-----END OPENSSH PRIVATE KEY-----",
            }
        ),
        "new_credential.public_key",
    ),
    ("no credential", push_body(new_credential=None), "credential"),
    (
        "a hosted password sent",
        push_body(
            new_credential={"kind": "hosted_password", "name": "x", "password": "mine-123456789"}
        ),
        "new_credential.password",
    ),
    ("an account in the body", {**push_body(), "account": 1}, "account"),
    ("an unknown data type", {**push_body(), "data_type": "emails"}, "data_type"),
    ("a name with a slash", push_body("a/b"), "name"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_422_naming_the_field_and_writes_nothing(
    client: TestClient, acme: Tenant, case: str, body: dict[str, Any], field: str
) -> None:
    answer = client.post(f"{V1}/connections", json=body, headers=acme.auth())
    assert answer.status_code == 422, answer.text
    document = answer.json()
    assert document["error"] == "invalid"
    assert field in document["errors"], document
    assert document["errors"][field]
    assert f"{field}: " in document["message"]
    assert client.get(f"{V1}/connections", headers=acme.auth()).json() == []
    assert client.get(f"{V1}/credentials", headers=acme.auth()).json() == []


def test_a_duplicate_name_is_422(client: TestClient, acme: Tenant) -> None:
    first = create(client, acme, push_body("Orders"))
    for name in ("Orders", " orders ", "ORDERS"):
        answer = client.post(f"{V1}/connections", json=push_body(name), headers=acme.auth())
        assert answer.status_code == 422
        assert "already exists" in answer.json()["errors"]["name"]
    listed = client.get(f"{V1}/connections", headers=acme.auth()).json()
    assert [c["id"] for c in listed] == [first["connection"]["id"]]
    assert len(client.get(f"{V1}/credentials", headers=acme.auth()).json()) == 1


def test_one_call_create_each_kind_of_credential(client: TestClient, acme: Tenant) -> None:
    hosted = create(client, acme, push_body("Hosted"))
    assert hosted["credential"]["password"]
    assert hosted["credential"]["username"] == hosted["credential"]["credential"]["login"]

    keyed = create(
        client,
        acme,
        push_body(
            "Keyed",
            new_credential={
                "kind": "hosted_public_key",
                "name": "laptop",
                "public_key": public_key(),
            },
        ),
    )
    assert keyed["credential"]["password"] is None
    assert keyed["credential"]["credential"]["fingerprints"][0].startswith("SHA256:")

    pulled = create(client, acme, pull_body())
    assert pulled["credential"]["public_key"].startswith("ssh-ed25519 ")
    assert pulled["connection"]["uri"] == "sftp://dy@sftp.partner.example:22/out"

    reused = create(
        client,
        acme,
        push_body(
            "Reused", new_credential=None, credential_id=hosted["connection"]["credential_id"]
        ),
    )
    assert reused["credential"] is None
    assert reused["connection"]["credential_id"] == hosted["connection"]["credential_id"]

    email = {
        "name": "Mailbox",
        "direction": "inbound",
        "data_type": "clicks",
        "method": "email",
        "methodology": "push",
        "details": {"file_pattern": "*.csv"},
    }
    mailed = create(client, acme, email)
    assert mailed["credential"] is None
    assert mailed["connection"]["email_address"].startswith("mailbox-")

    defaults = create(
        client,
        acme,
        {
            "name": "Defaults",
            "direction": "outbound",
            "data_type": "reports",
            "new_credential": {"kind": "hosted_password", "name": "d"},
        },
    )
    assert (defaults["connection"]["method"], defaults["connection"]["methodology"]) == (
        "sftp",
        "hosted",
    )


def test_list_filters_read_and_status_changes(client: TestClient, acme: Tenant) -> None:
    orders = create(client, acme, push_body("Orders"))["connection"]
    clicks = create(client, acme, push_body("Clicks", data_type="clicks"))["connection"]
    auth = acme.auth()

    def listed(**params: str) -> list[int]:
        answer = client.get(f"{V1}/connections", params=params, headers=auth)
        assert answer.status_code == 200, answer.text
        return [c["id"] for c in answer.json()]

    assert listed() == [orders["id"], clicks["id"]]
    assert listed(data_type="clicks") == [clicks["id"]]
    bad = client.get(f"{V1}/connections", params={"status": "gone"}, headers=auth)
    assert bad.status_code == 422
    assert "status" in bad.json()["errors"]
    bad = client.get(f"{V1}/connections", params={"data_type": "nope"}, headers=auth)
    assert bad.status_code == 422
    assert "data_type" in bad.json()["errors"]

    paused = client.post(f"{V1}/connections/{orders['id']}/pause", headers=auth).json()
    assert paused["status"] == "paused"
    assert listed(status="paused") == [orders["id"]]
    assert listed(status="active") == [clicks["id"]]
    resumed = client.post(f"{V1}/connections/{orders['id']}/resume", headers=auth).json()
    assert resumed["status"] == "active"
    archived = client.post(f"{V1}/connections/{orders['id']}/archive", headers=auth)
    assert archived.json()["status"] == "archived"
    again = client.post(f"{V1}/connections/{orders['id']}/resume", headers=auth)
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    assert client.get(f"{V1}/connections/{orders['id']}", headers=auth).json()["status"] == (
        "archived"
    )
    assert client.get(f"{V1}/connections/999999", headers=auth).status_code == 404


def test_patch_details(client: TestClient, acme: Tenant) -> None:
    connection = create(client, acme, pull_body())["connection"]
    path = f"{V1}/connections/{connection['id']}"
    changed = client.patch(path, json={"details": {"schedule": "daily"}}, headers=acme.auth())
    assert changed.status_code == 200, changed.text
    assert changed.json()["details"]["schedule"] == "daily"
    assert changed.json()["details"]["host"] == "sftp.partner.example"

    refusals: list[tuple[dict[str, Any], str]] = [
        ({"details": {"host": "elsewhere.example"}}, "details.host"),
        ({"details": {"folder": "/other", "port": 2022}}, "details.folder"),
        ({"details": {"schedule": "61 * * * *"}}, "details.schedule"),
        ({"details": {"surprise": 1}}, "details.surprise"),
        ({"details": {}, "name": "Renamed"}, "name"),
        ({"details": "daily"}, "details"),
    ]
    for body, field in refusals:
        answer = client.patch(path, json=body, headers=acme.auth())
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.json()["errors"], (body, answer.json())
    after = client.get(path, headers=acme.auth()).json()
    assert after["details"] == changed.json()["details"]
    assert after["name"] == connection["name"]
