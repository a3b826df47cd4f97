"""The wizard over HTTP: every step including back, errors per field, the sealed remote
password, and creating from a state at review."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from dropyard.app import Dropyard
from tests.api.helpers import V1, Tenant

PARTNER_PASSWORD = "Partner-Pa55word!xyz"


def step(client: TestClient, tenant: Tenant, action: str, **body: Any) -> dict[str, Any]:
    answer = client.post(f"{V1}/wizard/{action}", json=body, headers=tenant.auth())
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def refused(client: TestClient, tenant: Tenant, action: str, **body: Any) -> dict[str, str]:
    answer = client.post(f"{V1}/wizard/{action}", json=body, headers=tenant.auth())
    assert answer.status_code == 422, answer.text
    errors: dict[str, str] = answer.json()["errors"]
    return errors


def test_walk_every_step_with_back_and_create(client: TestClient, acme: Tenant) -> None:
    at = step(client, acme, "start")
    assert at["options"]["step"] == "direction"
    assert not at["options"]["can_go_back"]
    assert [c["value"] for c in at["options"]["choices"]["direction"]] == ["inbound", "outbound"]
    assert refused(client, acme, "submit", state=at["state"], data={"direction": "inbound"}) == {
        "name": "name is required"
    }

    at = step(
        client, acme, "submit", state=at["state"], data={"name": "Orders", "direction": "inbound"}
    )
    assert at["options"]["step"] == "type"
    assert "reports" not in [c["value"] for c in at["options"]["choices"]["data_type"]]

    at = step(client, acme, "submit", state=at["state"], data={"data_type": "clicks"})
    assert at["options"]["step"] == "method"
    assert at["options"]["selected"]["method"] == "sftp"
    assert at["options"]["selected"]["methodology"] == "push"
    assert "sftp/pull" in at["options"]["fields_by_combination"]

    back = step(client, acme, "back", state=at["state"])
    assert back["options"]["step"] == "type"
    assert back["options"]["selected"] == {"data_type": "clicks"}
    at = step(client, acme, "submit", state=back["state"], data={"data_type": "conversions"})

    errors = refused(
        client,
        acme,
        "submit",
        state=at["state"],
        data={"method": "sftp", "methodology": "pull", "details": {"folder": "out"}},
    )
    assert {"details.host", "details.folder", "details.file_pattern"} <= set(errors)
    for method, methodology in (("sftp", "hosted"), ("email", "deliver"), ("fax", "push")):
        data = {"method": method, "methodology": methodology}
        errors = refused(client, acme, "submit", state=at["state"], data=data)
        assert set(errors) == ({"method"} if method == "fax" else {"methodology"}), errors
    cron = {
        "method": "ftp",
        "methodology": "pull",
        "details": {
            "host": "h.example",
            "folder": "/",
            "file_pattern": "*",
            "schedule": "every tuesday",
        },
    }
    assert set(refused(client, acme, "submit", state=at["state"], data=cron)) == {
        "details.schedule"
    }
    at = step(
        client,
        acme,
        "submit",
        state=at["state"],
        data={"method": "sftp", "methodology": "push", "details": {"file_pattern": "*.csv"}},
    )
    assert at["options"]["step"] == "credentials"
    assert at["options"]["credential_required"]
    kinds = [c["value"] for c in at["options"]["choices"]["kind"]]
    assert kinds == ["hosted_password", "hosted_public_key"]
    assert "new.kind" in refused(
        client, acme, "submit", state=at["state"], data={"new": {"kind": "remote_password"}}
    )

    new = {"kind": "hosted_password", "name": "orders login"}
    at = step(client, acme, "submit", state=at["state"], data={"new": new})
    assert at["options"]["step"] == "review"
    review = step(client, acme, "review", state=at["state"])
    assert ("Name", "Orders") in [(i["label"], i["value"]) for i in review["items"]]
    assert review["uri"] == "sftp://<generated>@127.0.0.1:2222/orders"

    back = step(client, acme, "back", state=at["state"])
    assert back["options"]["step"] == "credentials"
    assert back["options"]["selected"]["new"]["name"] == "orders login"
    at = step(client, acme, "submit", state=back["state"], data={"new": new})

    made = client.post(f"{V1}/connections", json={"state": at["state"]}, headers=acme.auth())
    assert made.status_code == 201, made.text
    connection, credential = made.json()["connection"], made.json()["credential"]
    assert connection["details"]["file_pattern"] == "*.csv"
    assert connection["uri"] == f"sftp://{credential['username']}@127.0.0.1:2222/orders"
    password = credential["password"]
    assert len(password) >= 20
    for path in (
        f"/connections/{connection['id']}",
        "/connections",
        "/credentials",
        f"/credentials/{connection['credential_id']}",
    ):
        answer = client.get(V1 + path, headers=acme.auth())
        assert answer.status_code == 200
        assert password not in answer.text

    # The same state again: the name is taken now.
    again = client.post(f"{V1}/connections", json={"state": at["state"]}, headers=acme.auth())
    assert again.status_code == 422
    assert "already exists" in again.json()["errors"]["name"]


def test_a_state_before_review_or_mixed_with_fields_is_refused(
    client: TestClient, acme: Tenant
) -> None:
    at = step(client, acme, "start")
    answer = client.post(f"{V1}/connections", json={"state": at["state"]}, headers=acme.auth())
    assert answer.status_code == 422
    assert "step" in answer.json()["errors"]
    mixed = {"state": at["state"], "name": "X"}
    answer = client.post(f"{V1}/connections", json=mixed, headers=acme.auth())
    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {"name"}
    forged = {
        "version": 1,
        "step": "review",
        "name": "Forged",
        "direction": "outbound",
        "data_type": "reports",
        "method": "sftp",
        "methodology": "pull",
        "details": {},
        "credential": {"type": "none"},
    }
    answer = client.post(f"{V1}/connections", json={"state": forged}, headers=acme.auth())
    assert answer.status_code == 422
    assert "pull" in answer.json()["errors"]["state"]
    garbage = {"state": {"step": "review", "version": 99}}
    assert "state" in refused(client, acme, "review", **garbage)
    assert client.get(f"{V1}/connections", headers=acme.auth()).json() == []


def _to_review_with_remote_password(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    at = step(client, tenant, "start")
    answers: list[dict[str, Any]] = [
        {"name": "Partner feed", "direction": "inbound"},
        {"data_type": "conversions"},
        {
            "method": "ftp",
            "methodology": "pull",
            "details": {"host": "ftp.partner.example", "folder": "/out", "file_pattern": "*"},
        },
        {
            "new": {
                "kind": "remote_password",
                "name": "their ftp",
                "username": "dropyard",
                "password": PARTNER_PASSWORD,
            }
        },
    ]
    texts = []
    for data in answers:
        answer = client.post(
            f"{V1}/wizard/submit", json={"state": at["state"], "data": data}, headers=tenant.auth()
        )
        assert answer.status_code == 200, answer.text
        texts.append(answer.text)
        at = answer.json()
    assert all(PARTNER_PASSWORD not in text for text in texts)
    return at


def test_a_remote_password_travels_sealed(
    app: Dropyard, client: TestClient, acme: Tenant, other: Tenant
) -> None:
    at = _to_review_with_remote_password(client, acme)
    sealed = at["state"]["credential"]["password"]
    assert sealed.startswith("sealed:")
    review = client.post(f"{V1}/wizard/review", json={"state": at["state"]}, headers=acme.auth())
    assert review.status_code == 200
    assert PARTNER_PASSWORD not in review.text
    back = step(client, acme, "back", state=at["state"])
    assert PARTNER_PASSWORD not in str(back)
    assert "password" not in back["options"]["selected"]["new"]

    # Another account cannot open it; a changed or plain value is refused.
    assert "state" in refused(client, other, "review", state=at["state"])
    for value in (sealed[:-6] + "AAAAAA", PARTNER_PASSWORD, "sealed:%%%"):
        changed = {**at["state"], "credential": {**at["state"]["credential"], "password": value}}
        assert "state" in refused(client, acme, "review", state=changed)

    made = client.post(f"{V1}/connections", json={"state": at["state"]}, headers=acme.auth())
    assert made.status_code == 201, made.text
    assert PARTNER_PASSWORD not in made.text
    assert made.json()["credential"]["password"] is None
    secret = app.credentials.remote_secret(made.json()["connection"]["credential_id"])
    assert secret.password == PARTNER_PASSWORD
    assert secret.username == "dropyard"
