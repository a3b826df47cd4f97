"""Every input of every page has a label, and every page has one main heading."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.support import OPERATOR
from tests.ui.conftest import NewPage, SignedIn
from tests.ui.pages import connection_of, processed_file
from tests.ui.server import Console

pytestmark = pytest.mark.xdist_group("ui")

UNLABELLED = """() => Array.from(document.querySelectorAll("input, select, textarea"))
    .filter(e => e.type !== "hidden")
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label"))
    .map(e => e.name || e.id)"""


def check(page: Page, where: str) -> None:
    assert page.evaluate(UNLABELLED) == [], where
    assert page.locator("h1").count() == 1, where
    assert page.locator("main#main").count() == 1, where


def test_every_input_has_a_label(console: Console, signed_in: SignedIn, new_page: NewPage) -> None:
    anonymous = new_page()
    anonymous.goto(console.url("/signin"))
    check(anonymous, "/signin")
    app = console.app
    connection_id = connection_of(app, console.admin.account_id)
    file_id = processed_file(app, connection_id, name="labels.csv").id
    credential_id = app.connections.get(OPERATOR, connection_id).credential_id
    page = signed_in(console, console.admin)
    for path in (
        "/connections",
        f"/connections/{connection_id}",
        f"/connections/{connection_id}/history",
        f"/connections/{connection_id}/files/{file_id}",
        f"/connections/{connection_id}/archive",
        "/credentials",
        f"/credentials/{credential_id}",
        "/connections/new",
    ):
        page.goto(console.url(path))
        check(page, path)
    page.get_by_label("Connection name").fill("Labelled")
    page.get_by_label("Give data to us").check()
    page.get_by_role("button", name="Next", exact=True).click()
    check(page, "type step")
    page.get_by_label("Clicks", exact=True).check()
    page.get_by_role("button", name="Next", exact=True).click()
    page.locator("#f-methodology-pull").check()
    check(page, "method step")
    page.locator("#f-details-host").fill("sftp.partner.example")
    page.locator("#f-details-folder").fill("/out")
    page.locator("#f-details-file_pattern").fill("*")
    page.get_by_role("button", name="Next", exact=True).click()
    check(page, "credentials step")
