"""A connection's file history and one file with its events."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dropyard.app import Dropyard
from tests.api.helpers import V1, Tenant, create, push_body, upload


def test_history_and_one_file(app: Dropyard, client: TestClient, acme: Tenant) -> None:
    cid = create(client, acme, push_body())["connection"]["id"]
    first, second = upload(app, cid, "a.csv"), upload(app, cid, "b.csv")

    listed = client.get(f"{V1}/connections/{cid}/files", headers=acme.auth("viewer"))
    assert listed.status_code == 200
    assert [(f["id"], f["name"], f["state"]) for f in listed.json()] == [
        (second, "b.csv", "received"),
        (first, "a.csv", "received"),
    ]
    limited = client.get(f"{V1}/connections/{cid}/files?limit=1", headers=acme.auth())
    assert [f["id"] for f in limited.json()] == [second]
    assert client.get(f"{V1}/connections/{cid}/files?limit=0", headers=acme.auth()).status_code == (
        422
    )

    one = client.get(f"{V1}/files/{first}", headers=acme.auth("viewer")).json()
    assert one["name"] == "a.csv"
    assert one["size"] == 31
    assert len(one["sha256"]) == 64
    assert [(e["state"], e["reason"]) for e in one["events"]] == [
        ("received", "received over sftp")
    ]
    assert "storage_key" not in one
    assert client.get(f"{V1}/files/999999", headers=acme.auth()).status_code == 404
