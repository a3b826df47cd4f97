"""The connections page and a connection's own pages: figures, filters, pause, resume and
archive, settings, the history with its downloads, and who may see and change what."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support import OPERATOR, unique
from tests.ui.conftest import SignedIn
from tests.ui.pages import (
    connection_of,
    csrf_token,
    fresh_admin,
    post,
    processed_file,
    shot,
)
from tests.ui.server import SCREENSHOTS, Console

pytestmark = pytest.mark.xdist_group("ui")


def row(page: Page, connection_id: int) -> Any:
    return page.locator(f"tr[data-connection='{connection_id}']")


def test_the_list_with_figures_and_filters(console: Console, signed_in: SignedIn) -> None:
    app = console.app
    user = fresh_admin(console)
    orders = connection_of(app, user.account_id, name=unique("Orders"))
    reports = connection_of(
        app, user.account_id, method="sftp", methodology="hosted", data_type="reports"
    )
    clicks = connection_of(app, user.account_id, data_type="clicks")
    app.connections.pause(OPERATOR, clicks)
    marked_up = connection_of(app, user.account_id, name='<b id="injected">Bold<b> feed & co')
    processed_file(app, orders, name="a.csv", state="partial")
    processed_file(app, orders, name="b.csv", state="failed", results=False)

    page = signed_in(console, user)
    page.goto(console.url("/connections"))
    expect(page.locator("#files-today")).to_have_text("2")
    expect(page.locator("#failures-today")).to_have_text("1")
    for header in ("Name", "Type", "Direction", "Method", "Status", "Last active", "Actions"):
        expect(page.get_by_role("columnheader", name=header, exact=True)).to_be_visible()
    expect(row(page, orders)).to_contain_text("Give data to us")
    expect(row(page, orders)).to_contain_text("SFTP · Push to Dropyard")
    expect(row(page, reports)).to_contain_text("Receive data from us")
    expect(row(page, clicks).locator(".status")).to_have_text("paused")
    expect(row(page, orders).locator("td[data-label='Last success']")).not_to_have_text("never")
    expect(row(page, reports).locator("td[data-label='Last success']")).to_have_text("never")
    expect(row(page, marked_up)).to_contain_text('<b id="injected">Bold<b> feed & co')  # as text
    expect(page.locator("#injected")).to_have_count(0)
    shot(page, "connections-list")

    page.get_by_label("Status").select_option("paused")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(console.url("/connections?status=paused&type="))
    expect(page.locator("tr[data-connection]")).to_have_count(1)
    expect(row(page, clicks)).to_be_visible()
    page.goto(console.url("/connections?type=reports"))
    expect(page.locator("tr[data-connection]")).to_have_count(1)
    expect(row(page, reports)).to_be_visible()
    expect(page.get_by_label("Type")).to_have_value("reports")
    page.goto(console.url("/connections?status=nonsense&type=paused"))  # ignored, not an error
    expect(page.locator("tr[data-connection]")).to_have_count(4)


def test_pause_resume_and_archive(console: Console, signed_in: SignedIn) -> None:
    app = console.app
    name = unique("Switchable")
    connection_id = connection_of(app, console.admin.account_id, name=name)
    page = signed_in(console, console.admin, javascript=False)
    page.goto(console.url("/connections"))
    row(page, connection_id).get_by_role("button", name=f"Pause {name}").click()
    expect(page.get_by_role("status")).to_have_text(f"Connection '{name}' paused.")
    expect(row(page, connection_id).locator(".status")).to_have_text("paused")
    row(page, connection_id).get_by_role("button", name=f"Resume {name}").click()
    expect(row(page, connection_id).locator(".status")).to_have_text("active")
    row(page, connection_id).get_by_role("link", name=f"Archive {name}").click()
    expect(page.get_by_role("heading", name=f"Archive {name}?")).to_be_visible()
    page.get_by_role("button", name="Archive connection").click()
    expect(page).to_have_url(console.url(f"/connections/{connection_id}"))
    expect(page.locator("h1 .status")).to_have_text("archived")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    assert app.connections.get(OPERATOR, connection_id).status == "archived"
    # An archived connection stays archived, whatever a hand-made POST asks.
    answer = post(
        page, console, f"/connections/{connection_id}/resume", {"csrf_token": csrf_token(page)}
    )
    assert answer.status == 409
    assert app.connections.get(OPERATOR, connection_id).status == "archived"


def test_edit_the_settings_of_a_connection(console: Console, signed_in: SignedIn) -> None:
    app = console.app
    connection_id = connection_of(app, console.admin.account_id)
    page = signed_in(console, console.admin, javascript=False)
    page.goto(console.url("/connections"))
    page.locator(f"tr[data-connection='{connection_id}']").get_by_role("link", name="Edit").click()
    expect(page.locator("#settings")).to_be_visible()
    page.get_by_label("File pattern").fill("orders/*.csv")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#f-details-file_pattern-error")).to_contain_text("must not contain '/'")
    expect(page.get_by_label("File pattern")).to_have_value("orders/*.csv")
    assert app.connections.get(OPERATOR, connection_id).details["file_pattern"] == "*"
    page.get_by_label("File pattern").fill("orders_*.csv")
    page.get_by_label("Allow extra columns").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    details = app.connections.get(OPERATOR, connection_id).details
    assert (details["file_pattern"], details["allow_extra_columns"]) == ("orders_*.csv", True)
    page.get_by_label("Allow extra columns").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_label("Allow extra columns")).not_to_be_checked()
    assert app.connections.get(OPERATOR, connection_id).details["allow_extra_columns"] is False
    expect(page.locator("#connection-uri")).to_contain_text("sftp://")


def check_history_and_downloads(console: Console, page: Page, tmp_path: Path) -> None:
    app = console.app
    connection_id = connection_of(app, console.admin.account_id)
    partial = processed_file(app, connection_id, name="orders.csv", state="partial")
    failed = processed_file(app, connection_id, name="broken.csv", state="failed", results=False)
    page.goto(console.url(f"/connections/{connection_id}"))
    page.get_by_role("link", name="View History").click()
    expect(page).to_have_url(console.url(f"/connections/{connection_id}/history"))
    line = page.locator(f"tr[data-file='{partial.id}']")
    expect(line.locator(".status")).to_have_text("partial")
    expect(line.locator("td[data-label='Rows']")).to_have_text("3")
    expect(line.locator("td[data-label='Imported']")).to_have_text("2")
    expect(line.locator("td[data-label='Errors']")).to_have_text("1")
    expect(page.locator(f"tr[data-file='{failed.id}']")).to_contain_text("whole file was refused")
    shot(page, f"history-{console.database}")

    with page.expect_download() as download:
        line.get_by_role("link", name="Error file of orders.csv").click()
    assert download.value.suggested_filename == "result_orders.csv_errors.csv.gz"
    saved = tmp_path / "errors.csv.gz"
    download.value.save_as(saved)
    assert b"LineNumber,ErrorType" in gzip.decompress(saved.read_bytes())
    with page.expect_download() as download:
        line.get_by_role("link", name="Summary of orders.csv").click()
    download.value.save_as(tmp_path / "summary.json")
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "PARTIAL"

    line.get_by_role("link", name="orders.csv", exact=True).click()
    expect(page.locator("h1")).to_contain_text("orders.csv")
    expect(page.locator(".events")).to_contain_text("received over sftp")
    expect(page.locator(".events")).to_contain_text("partial by test")
    # A result that is no longer in the folder is a 404 page, not an error.
    answer = page.request.get(
        console.url(f"/connections/{connection_id}/files/{failed.id}/summary")
    )
    assert answer.status == 404


def test_history_and_downloads(console: Console, signed_in: SignedIn, tmp_path: Path) -> None:
    check_history_and_downloads(console, signed_in(console, console.admin), tmp_path)


def test_retry_a_failed_file_by_hand(console: Console, signed_in: SignedIn) -> None:
    app = console.app
    connection_id = connection_of(app, console.admin.account_id)
    failed = processed_file(app, connection_id, name="again.csv", state="failed", results=False)
    partial = processed_file(app, connection_id, name="fine.csv", state="partial")
    page = signed_in(console, console.admin)
    page.goto(console.url(f"/connections/{connection_id}/history"))
    offered = callable(getattr(app, "retry", None)) or hasattr(
        getattr(app, "processor", None), "retry"
    )
    if not offered:  # the pipeline offers no retry: no button
        expect(page.get_by_role("button", name="Retry again.csv")).to_have_count(0)
        return
    expect(page.get_by_role("button", name="Retry fine.csv")).to_have_count(0)
    page.get_by_role("button", name="Retry again.csv").click()
    expect(page.get_by_role("status")).to_contain_text("will be processed again")
    view, events = app.files.get(OPERATOR, failed.id)
    assert view.state in ("received", "processing", "processed", "partial", "failed")
    assert any(e.reason == "retried by hand" for e in events)
    assert app.files.get(OPERATOR, partial.id)[0].state == "partial"
    viewer = signed_in(console, console.viewer)
    viewer.goto(console.url(f"/connections/{connection_id}/history"))
    expect(viewer.get_by_role("button", name="Retry again.csv")).to_have_count(0)


def check_other_accounts_are_not_found(console: Console, page: Page) -> None:
    """Everything of another account is a 404 page: reading, downloading, changing."""
    app = console.app
    theirs = connection_of(app, console.other.account_id)
    their_file = processed_file(app, theirs, name="secret.csv")
    their_credential = app.connections.get(OPERATOR, theirs).credential_id
    mine = connection_of(app, console.admin.account_id)
    page.goto(console.url("/connections"))
    expect(row(page, theirs)).to_have_count(0)
    for path in (
        f"/connections/{theirs}",
        f"/connections/{theirs}/history",
        f"/connections/{theirs}/archive",
        f"/connections/{theirs}/created",
        f"/connections/{theirs}/files/{their_file.id}",
        f"/connections/{theirs}/files/{their_file.id}/errors",
        f"/connections/{mine}/files/{their_file.id}",
        f"/connections/{mine}/files/{their_file.id}/summary",
        f"/credentials/{their_credential}",
        f"/credentials/{their_credential}/issued",
    ):
        page.goto(console.url(path))
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        assert "secret" not in page.content()
    answer = page.request.get(console.url(f"/connections/{theirs}"))
    assert answer.status == 404
    token = csrf_token(page)
    for path in (
        f"/connections/{theirs}/pause",
        f"/connections/{theirs}/archive",
        f"/connections/{theirs}/settings",
        f"/credentials/{their_credential}/revoke",
        f"/credentials/{their_credential}/rotate",
    ):
        assert post(page, console, path, {"csrf_token": token}).status == 404, path
    assert app.connections.get(OPERATOR, theirs).status == "active"
    assert app.credentials.get(OPERATOR, their_credential or 0).active


def test_another_accounts_connection_is_not_found(console: Console, signed_in: SignedIn) -> None:
    check_other_accounts_are_not_found(console, signed_in(console, console.admin))


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_viewers_and_members_see_but_cannot_change(
    console: Console, signed_in: SignedIn, role: str
) -> None:
    app = console.app
    user = console.viewer if role == "viewer" else console.member
    connection_id = connection_of(app, user.account_id, name=unique(f"Seen by {role}"))
    credential_id = app.connections.get(OPERATOR, connection_id).credential_id
    page = signed_in(console, user)
    page.goto(console.url("/connections"))
    expect(row(page, connection_id)).to_be_visible()
    expect(page.get_by_role("link", name="Create Connection")).to_have_count(0)
    expect(row(page, connection_id).get_by_role("button")).to_have_count(0)
    expect(row(page, connection_id).get_by_role("link", name="Edit")).to_have_count(0)
    expect(row(page, connection_id).get_by_role("link", name="View History")).to_be_visible()
    page.goto(console.url(f"/connections/{connection_id}"))
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    expect(page.locator("#settings dl")).to_contain_text("File pattern")
    page.goto(console.url("/credentials"))
    expect(page.get_by_role("heading", name="New credential")).to_have_count(0)
    expect(page.get_by_role("link", name="Rotate")).to_have_count(0)
    page.goto(console.url("/connections/new"))
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()

    token = csrf_token(page)
    for path in (
        "/connections/new",
        f"/connections/{connection_id}/pause",
        f"/connections/{connection_id}/archive",
        f"/connections/{connection_id}/settings",
        "/credentials",
        f"/credentials/{credential_id}/rotate",
        f"/credentials/{credential_id}/revoke",
        f"/credentials/{credential_id}/rename",
    ):
        data = {"csrf_token": token, "name": "x", "new.kind": "hosted_password", "new.name": "x"}
        assert post(page, console, path, data).status == 403, path
    assert app.connections.get(OPERATOR, connection_id).status == "active"
    assert app.credentials.get(OPERATOR, credential_id or 0).active


def test_pages_at_375_pixels_wide(console: Console, new_page: Any) -> None:
    from tests.ui.pages import sign_in

    app = console.app
    connection_id = connection_of(app, console.admin.account_id)
    processed_file(app, connection_id, name="narrow.csv")
    page = new_page(width=375, height=800)
    sign_in(page, console, console.admin)
    for path, name in (
        ("/connections", "connections"),
        (f"/connections/{connection_id}", "connection"),
        (f"/connections/{connection_id}/history", "history"),
        ("/credentials", "credentials"),
    ):
        page.goto(console.url(path))
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, path
        page.screenshot(path=str(SCREENSHOTS / f"375px-{name}.png"), full_page=True)
