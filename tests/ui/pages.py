"""What a person does in the console, as helpers the browser tests share."""

from __future__ import annotations

import gzip
import re
from typing import Any

from playwright.sync_api import APIResponse, Page, expect
from sqlalchemy import update

from dropyard.app import Dropyard
from dropyard.db.base import utcnow
from dropyard.db.engine import transaction
from dropyard.files.models import File, FileEvent
from dropyard.files.names import errors_name, summary_name
from dropyard.files.service import FileView
from tests.support import OPERATOR, unique, walk_wizard
from tests.ui.server import PASSWORD, SCREENSHOTS, Console, User

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def sign_in(page: Page, console: Console, user: User, *, next_path: str = "") -> None:
    page.goto(console.url("/signin" + (f"?next={next_path}" if next_path else "")))
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def csrf_token(page: Page) -> str:
    value = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert value
    return value


def post(page: Page, console: Console, path: str, data: dict[str, Any]) -> APIResponse:
    """A POST from the page's browser context (its cookies), without following redirects."""
    return page.request.post(console.url(path), form=data, max_redirects=0)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"))


def assert_security_headers(headers: dict[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name
    policy = headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


def processed_file(
    app: Dropyard,
    connection_id: int,
    *,
    name: str = "orders.csv",
    state: str = "partial",
    rows: tuple[int, int, int] = (3, 2, 1),
    results: bool = True,
) -> FileView:
    """A file as the pipeline leaves it: received through the one commit path, then moved
    to its final state with row counts, and its results put in the connection's folder."""
    spool = app.files.open_spool()
    spool.write(b"ActionTrackerId,Amount\n1,2\n3,x\n4,5\n")
    view = app.files.commit(
        spool, connection_id=connection_id, name=name, source="sftp", actor=OPERATOR
    )
    now = utcnow()
    total, ok, bad = rows
    with transaction(app.sessions) as session:
        session.execute(
            update(File)
            .where(File.id == view.id)
            .values(
                state=state,
                total_rows=total,
                ok_rows=ok,
                error_rows=bad,
                finished_at=now,
                updated_at=now,
                last_error="the whole file was refused" if state == "failed" else None,
            )
        )
        session.add(FileEvent(file_id=view.id, at=now, state=state, reason=f"{state} by test"))
    if results:
        app.files.put_folder_file(connection_id, summary_name(name), b'{"status": "PARTIAL"}\n')
        errors = b"ActionTrackerId,Amount,LineNumber,ErrorType,ErrorMessage\n3,x,3,INVALID,bad\n"
        app.files.put_folder_file(connection_id, errors_name(name), gzip.compress(errors))
    return app.files.get(OPERATOR, view.id)[0]


def connection_of(
    app: Dropyard,
    account_id: int,
    *,
    method: str = "sftp",
    methodology: str = "push",
    data_type: str = "conversions",
    name: str | None = None,
) -> int:
    """A connection made through the service (for tests that are not about the wizard)."""
    details: dict[str, Any] = {}
    credential: dict[str, Any] = {"new": {"kind": "hosted_password", "name": unique("login")}}
    if methodology == "deliver":
        details = {"host": "sftp.partner.example", "folder": "/in"}
        credential = {
            "new": {
                "kind": "remote_password",
                "name": unique("remote"),
                "username": "u",
                "password": "p",
            }
        }
    created = walk_wizard(
        app,
        OPERATOR,
        account=account_id,
        name=name or unique("Feed"),
        direction="outbound" if methodology in ("hosted", "deliver") else "inbound",
        data_type=data_type,
        method=method,
        methodology=methodology,
        details=details,
        credential=credential,
    )
    return created.connection.id


def fresh_admin(console: Console, role: str = "admin") -> User:
    """A user of a new account of its own, for tests that count what an account has."""
    app = console.app
    account = app.accounts.create_account(OPERATOR, name=unique("Tenant"), kind="partner")
    email = f"{role}-{account.id}@tenant.example"
    app.accounts.create_user(
        OPERATOR, account=account.id, email=email, role=role, password=PASSWORD
    )
    return User(email, PASSWORD, role, account.id)
