"""Any node serves any request: a console session signed in on node A and an API token
made on node A work on node B (same database, same master key), and not on a node with
another master key."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from tests.api.helpers import V1, make_tenant
from tests.cluster.conftest import OTHER_MASTER_KEY, other_node
from tests.support import OPERATOR, unique

from dropyard.app import Dropyard, build
from dropyard.settings import Settings
from dropyard.web.api.app import create_app
from dropyard.web.ui.security import SESSION_COOKIE


def sign_in(client: TestClient, email: str, password: str) -> str:
    """Sign in through the form, as a browser does; the session cookie it got."""
    form = client.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    done = client.post(
        "/signin",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/connections"
    return str(client.cookies[SESSION_COOKIE])


def test_a_console_session_from_node_a_is_signed_in_on_node_b(
    app: Dropyard, node_b: Dropyard, settings: Settings, tmp_path: Path
) -> None:
    account = app.accounts.create_account(OPERATOR, name=unique("Brand"), kind="brand")
    email = f"{unique('ada').replace(' ', '-')}@example.com"
    user = app.accounts.create_user(OPERATOR, account=account.id, email=email, role="admin")
    with TestClient(create_app(app)) as on_a:
        cookie = sign_in(on_a, email, user.password)
    with TestClient(create_app(node_b), cookies={SESSION_COOKIE: cookie}) as on_b:
        page = on_b.get("/connections", follow_redirects=False)
        assert page.status_code == 200
        assert email in page.text
    stranger = build(other_node(settings, tmp_path / "stranger", master_key=OTHER_MASTER_KEY))
    try:
        with TestClient(create_app(stranger), cookies={SESSION_COOKIE: cookie}) as elsewhere:
            page = elsewhere.get("/connections", follow_redirects=False)
            assert page.status_code == 303
            assert page.headers["location"].startswith("/signin")
    finally:
        stranger.close()


def test_an_api_token_made_on_node_a_works_on_node_b(app: Dropyard, node_b: Dropyard) -> None:
    tenant = make_tenant(app)
    with TestClient(create_app(node_b)) as on_b:
        answer = on_b.get(V1 + "/account", headers=tenant.auth("viewer"))
        assert answer.status_code == 200
        assert answer.json()["name"] == tenant.name
    # Revoked on A: refused on B at once (tokens are rows, not cached).
    with TestClient(create_app(app)) as on_a:
        revoked = on_a.delete(
            f"{V1}/tokens/{tenant.token_ids['viewer']}", headers=tenant.auth("admin")
        )
        assert revoked.status_code in (200, 204)
    with TestClient(create_app(node_b)) as on_b:
        assert on_b.get(V1 + "/account", headers=tenant.auth("viewer")).status_code == 401
