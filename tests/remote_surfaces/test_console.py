"""The console in a real browser: the wizard's review shows the partner's host key and
each check, and create pins it; a connection's "Test connection" button shows the
verdicts, and an unpinned key is approved from the page after confirming it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from dropyard.connections.service import ConnectionView
from tests.remote_surfaces.conftest import FarSide
from tests.support import OPERATOR, unique
from tests.ui.conftest import NewPage
from tests.ui.pages import sign_in
from tests.ui.server import PASSWORD, User, serve

pytestmark = pytest.mark.xdist_group("ui")


@pytest.fixture(scope="module")
def base_url(far_side: FarSide) -> Iterator[str]:
    running = serve(far_side.app)
    yield f"http://127.0.0.1:{running.port}"
    running.stop()


def _user(far_side: FarSide, role: str) -> User:
    email = f"{role}-{unique('u').replace(' ', '-')}@puller.example"
    far_side.app.accounts.create_user(
        OPERATOR, account=far_side.account_id, email=email, role=role, password=PASSWORD
    )
    return User(email, PASSWORD, role, far_side.account_id)


def _signed_in(new_page: NewPage, base_url: str, user: User) -> Page:
    page: Page = new_page()

    class _Console:
        def url(self, path: str) -> str:
            return base_url + path

    sign_in(page, _Console(), user)  # type: ignore[arg-type]
    return page


def test_the_review_shows_the_host_key_and_create_pins_it(
    far_side: FarSide, base_url: str, new_page: NewPage
) -> None:
    page = _signed_in(new_page, base_url, _user(far_side, "admin"))
    name = unique("Console pull")
    page.goto(base_url + "/connections/new")
    page.get_by_label("Connection name").fill(name)
    page.get_by_label("Give data to us").check()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Conversions").check()
    page.get_by_role("button", name="Next").click()
    page.locator("#f-method-sftp").check()
    page.locator("#f-methodology-pull").check()
    for key, value in far_side.details().items():
        page.locator(f"#f-details-{key}").fill(str(value))
    page.get_by_role("button", name="Next").click()
    page.locator("#f-mode-new").check()
    page.locator("#f-new-kind-remote_password").check()
    page.locator("#f-new-username").fill(far_side.box.login)
    page.locator("#f-new-password").fill(far_side.box.password)
    page.get_by_role("button", name="Next").click()

    expect(page.locator("#review-key")).to_have_text(f"{far_side.fingerprint} (will be pinned)")
    verdicts = page.locator("#verdicts")
    expect(verdicts).to_contain_text("reachable")
    expect(verdicts.locator(".verdict.failed")).to_have_count(0)
    expect(page.locator("#probe-sample")).to_contain_text(far_side.sample)
    page.get_by_role("button", name="Create connection").click()

    expect(page.get_by_role("status")).to_contain_text(f"Connection '{name}' created.")
    made = [
        c
        for c in far_side.app.connections.list_connections(OPERATOR, account=far_side.account_id)
        if c.name == name
    ]
    assert made[0].details["host_key_fingerprint"] == far_side.fingerprint


def test_test_connection_then_approve_the_host_key(
    far_side: FarSide, base_url: str, new_page: NewPage
) -> None:
    connection_id = far_side.pull()  # the server was not checked: unpinned
    member = _signed_in(new_page, base_url, _user(far_side, "member"))
    member.goto(base_url + f"/connections/{connection_id}")
    expect(member.locator("#trust-banner")).to_contain_text("not pinned yet")
    member.get_by_role("button", name="Test connection").click()
    expect(member.locator("#test-fingerprint")).to_have_text(far_side.fingerprint)
    expect(member.locator("#verdicts")).to_contain_text("login")
    expect(member.get_by_role("button", name="Approve host key")).to_have_count(0)

    admin = _signed_in(new_page, base_url, _user(far_side, "admin"))
    admin.goto(base_url + f"/connections/{connection_id}")
    admin.get_by_role("button", name="Test connection").click()
    expect(admin.locator("#approve-fingerprint")).to_have_text(far_side.fingerprint)
    admin.get_by_role("button", name="Approve host key").click()
    expect(admin.locator("#f-confirm-error")).to_contain_text("Confirm that the partner")
    admin.get_by_label("The partner confirmed this host key").check()
    admin.get_by_role("button", name="Approve host key").click()
    expect(admin.get_by_role("status")).to_contain_text(f"{far_side.fingerprint} is pinned")
    expect(admin.locator("#trust-banner")).to_have_count(0)
    view: ConnectionView = far_side.app.connections.get(OPERATOR, connection_id)
    assert view.details["host_key_fingerprint"] == far_side.fingerprint
