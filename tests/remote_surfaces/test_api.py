"""The API's side of trusting a partner's server: the wizard's review tests it live and
offers the key it saw as `pin`; create pins it, or refuses when the key changed; each
connection can be tested and its new key approved, within its own account only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dropyard.accounts.models import ROLES
from dropyard.web.api.app import create_app
from tests.api.helpers import V1, Tenant, make_tenant
from tests.remote_surfaces.conftest import FarSide, closed_port
from tests.support import OPERATOR, unique


@pytest.fixture(scope="module")
def client(far_side: FarSide) -> Iterator[TestClient]:
    with TestClient(create_app(far_side.app)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def puller(far_side: FarSide) -> Tenant:
    """Account B, with one token per role."""
    app = far_side.app
    made = {
        role: app.accounts.create_token(
            OPERATOR, account=far_side.account_id, name=unique(role), role=role
        )
        for role in ROLES
    }
    return Tenant(
        account_id=far_side.account_id,
        name=str(far_side.account_id),
        tokens={role: new.secret for role, new in made.items()},
        token_ids={role: new.token.id for role, new in made.items()},
    )


def _walk(client: TestClient, tenant: Tenant, far_side: FarSide, **details: Any) -> dict[str, Any]:
    """The wizard to its review step over the API: the state to review."""
    auth = tenant.auth()
    answer = client.post(f"{V1}/wizard/start", headers=auth)
    state = answer.json()["state"]
    steps: tuple[dict[str, Any], ...] = (
        {"name": unique("Api pull"), "direction": "inbound"},
        {"data_type": "conversions"},
        {"method": "sftp", "methodology": "pull", "details": far_side.details(**details)},
        far_side.login(),
    )
    for data in steps:
        answer = client.post(
            f"{V1}/wizard/submit", json={"state": state, "data": data}, headers=auth
        )
        assert answer.status_code == 200, answer.text
        state = answer.json()["state"]
    return dict(state)


def _review(client: TestClient, tenant: Tenant, state: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"{V1}/wizard/review", json={"state": state}, headers=tenant.auth())
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def test_review_tests_the_server_and_create_pins_what_it_showed(
    client: TestClient, puller: Tenant, far_side: FarSide
) -> None:
    state = _walk(client, puller, far_side)
    review = _review(client, puller, state)
    probe = review["probe"]
    assert probe["fingerprint"] == far_side.fingerprint
    assert review["pin"] == far_side.fingerprint
    items = {item["label"]: item["value"] for item in review["items"]}
    assert items["Host key"] == f"{far_side.fingerprint} (will be pinned)"
    verdicts = {v["check"]: v["ok"] for v in probe["verdicts"]}
    assert verdicts["reachable"] and verdicts["login"] and verdicts["folder readable"]
    assert far_side.sample in probe["sample"]

    made = client.post(
        f"{V1}/connections", json={"state": state, "pin": review["pin"]}, headers=puller.auth()
    )
    assert made.status_code == 201, made.text
    connection = made.json()["connection"]
    assert connection["details"]["host_key_fingerprint"] == far_side.fingerprint
    assert connection["trust"] is None


def test_create_refuses_a_key_that_changed_since_the_review(
    client: TestClient, puller: Tenant, far_side: FarSide
) -> None:
    state = _walk(client, puller, far_side)
    before = client.get(f"{V1}/connections", headers=puller.auth()).json()
    # The review showed another key than the server presents now.
    answer = client.post(
        f"{V1}/connections",
        json={"state": state, "pin": far_side.other_fingerprint},
        headers=puller.auth(),
    )
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["message"].startswith("the server's host key changed since the review")
    assert far_side.fingerprint in body["message"]
    assert client.get(f"{V1}/connections", headers=puller.auth()).json() == before


def test_a_typed_fingerprint_that_differs_is_shown(
    client: TestClient, puller: Tenant, far_side: FarSide
) -> None:
    state = _walk(client, puller, far_side, host_key_fingerprint=far_side.other_fingerprint)
    review = _review(client, puller, state)
    items = {item["label"]: item["value"] for item in review["items"]}
    assert "DIFFERS from the fingerprint you entered" in items["Host key"]
    assert review["pin"] is None  # the typed one stays the user's choice
    assert not {v["check"]: v["ok"] for v in review["probe"]["verdicts"]}["trusted"]


def test_an_unreachable_server_does_not_block_creating_unpinned(
    client: TestClient, puller: Tenant, far_side: FarSide
) -> None:
    state = _walk(client, puller, far_side, port=closed_port())
    review = _review(client, puller, state)
    assert review["pin"] is None
    assert not {v["check"]: v["ok"] for v in review["probe"]["verdicts"]}["reachable"]
    made = client.post(f"{V1}/connections", json={"state": state}, headers=puller.auth())
    assert made.status_code == 201, made.text
    connection = made.json()["connection"]
    assert connection["details"].get("host_key_fingerprint") is None
    assert connection["trust"] == (
        f"host key not pinned yet: run `dropyard connections test {connection['id']}` and approve"
    )


def test_test_and_approve_by_role_and_tenant(
    client: TestClient, puller: Tenant, far_side: FarSide
) -> None:
    connection_id = far_side.pull()  # unpinned
    path = f"{V1}/connections/{connection_id}"

    tested = client.post(f"{path}/test", headers=puller.auth("member"))
    assert tested.status_code == 200, tested.text
    report = tested.json()
    assert report["fingerprint"] == far_side.fingerprint
    assert {v["check"]: v["ok"] for v in report["verdicts"]}["login"]
    assert client.post(f"{path}/test", headers=puller.auth("viewer")).status_code == 403

    stranger = make_tenant(far_side.app)
    assert client.post(f"{path}/test", headers=stranger.auth()).status_code == 404
    assert (
        client.post(
            f"{path}/approve", json={"fingerprint": far_side.fingerprint}, headers=stranger.auth()
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"{path}/approve",
            json={"fingerprint": far_side.fingerprint},
            headers=puller.auth("member"),
        ).status_code
        == 403
    )

    wrong = client.post(
        f"{path}/approve", json={"fingerprint": far_side.other_fingerprint}, headers=puller.auth()
    )
    assert wrong.status_code == 422, wrong.text
    assert (
        far_side.app.connections.get(OPERATOR, connection_id).details.get("host_key_fingerprint")
        is None
    )

    approved = client.post(
        f"{path}/approve", json={"fingerprint": far_side.fingerprint}, headers=puller.auth()
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["details"]["host_key_fingerprint"] == far_side.fingerprint
    assert approved.json()["trust"] is None


def test_the_openapi_document_types_the_new_routes(client: TestClient) -> None:
    document = client.get("/api/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert {"check", "ok", "detail"} <= set(schemas["VerdictOut"]["properties"])
    assert "probe" in schemas["ReviewOut"]["properties"]
    assert "pin" in schemas["ConnectionCreate"]["properties"]
    test_route = document["paths"]["/api/v1/connections/{connection_id}/test"]["post"]
    ok = test_route["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/ProbeOut")
