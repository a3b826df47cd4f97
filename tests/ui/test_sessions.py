"""Signing in and out, the defender's bans, the session cookie, CSRF tokens and the
security headers of every console answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from starlette.requests import Request
from starlette.responses import Response

from dropyard.gateway.defender import Defender, DefenderPolicy
from dropyard.web.ui.security import Cookies, Sealer, Session
from tests.support import OPERATOR
from tests.ui.conftest import NewPage, SignedIn
from tests.ui.pages import assert_security_headers, connection_of, csrf_token, post, sign_in
from tests.ui.server import Console

pytestmark = pytest.mark.xdist_group("ui")


@pytest.fixture
def strict_defender(console: Console) -> Iterator[Defender]:
    """A defender of its own (3 failures ban), so that this test's failures and bans do
    not reach the other tests, which sign in from the same 127.0.0.1."""
    kept = console.app.defender
    console.app.defender = Defender(DefenderPolicy(max_failures=3, ban_seconds=600))
    yield console.app.defender
    console.app.defender = kept


def sign_in_and_out(console: Console, page: Page) -> None:
    page.goto(console.url("/connections"))
    expect(page).to_have_url(console.url("/signin?next=/connections"))
    page.get_by_label("Email").fill(console.admin.email.upper())
    page.get_by_label("Password").fill(console.admin.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.url("/connections"))
    expect(page.locator(".who")).to_contain_text(console.admin.email)
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.url("/signin"))
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(console.url("/credentials"))
    expect(page).to_have_url(console.url("/signin?next=/credentials"))


def test_sign_in_and_out(console: Console, new_page: NewPage) -> None:
    sign_in_and_out(console, new_page(javascript=False))


def test_after_sign_in_only_a_path_of_this_site_is_followed(
    console: Console, new_page: NewPage
) -> None:
    page = new_page()
    sign_in(page, console, console.viewer, next_path="//evil.example/connections")
    expect(page).to_have_url(console.url("/connections"))
    page.goto(console.url("/signin?next=/credentials"))  # signed in already: straight there
    expect(page).to_have_url(console.url("/credentials"))
    page.goto(console.url("/signout"))  # a page that asks; signing out is a POST
    page.locator("main").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.url("/signin"))
    page.goto(console.url("/signout"))
    expect(page).to_have_url(console.url("/signin"))


def test_wrong_email_and_wrong_password_look_the_same(
    console: Console, new_page: NewPage, strict_defender: Defender
) -> None:
    page = new_page()
    answers = []
    for email, password in ((console.admin.email, "wrong"), ("nobody@acme.example", "wrong")):
        page.goto(console.url("/signin"))
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        with page.expect_response(console.url("/signin")) as response:
            page.get_by_role("button", name="Sign in").click()
        answers.append((response.value.status, page.locator("#signin-error").inner_text()))
        expect(page.get_by_label("Password")).to_have_value("")
    assert answers[0] == answers[1] == (401, "Wrong email or password.")


def test_the_defender_bans_an_address_after_failed_sign_ins(
    console: Console, new_page: NewPage, strict_defender: Defender
) -> None:
    page = new_page()
    page.goto(console.url("/signin"))
    for attempt in range(3):
        page.get_by_label("Email").fill(console.admin.email)
        page.get_by_label("Password").fill(f"wrong {attempt}")
        page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_contain_text("Too many failed sign-ins")
    assert strict_defender.is_banned("127.0.0.1")
    # Banned: even the right password is refused, without being checked.
    page.get_by_label("Email").fill(console.admin.email)
    page.get_by_label("Password").fill(console.admin.password)
    with page.expect_response(console.url("/signin")) as response:
        page.get_by_role("button", name="Sign in").click()
    assert response.value.status == 429
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_the_session_cookie_is_sealed_http_only_and_lax(
    console: Console, new_page: NewPage
) -> None:
    page = new_page()
    sign_in(page, console, console.viewer)
    cookie = next(c for c in page.context.cookies() if c["name"] == "dropyard_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # served over plain http here; see the https test
    assert "acme" not in cookie["value"]
    assert "@" not in cookie["value"]
    assert cookie["expires"] > 0
    page.context.add_cookies([{**cookie, "value": "x" + cookie["value"][1:]}])
    page.goto(console.url("/connections"))
    expect(page).to_have_url(console.url("/signin?next=/connections"))


def test_over_https_the_cookies_are_secure() -> None:
    scope = {"type": "http", "scheme": "http", "path": "/", "headers": [], "query_string": b""}
    for https, scheme, secure in (
        (True, "http", True),
        (False, "https", True),
        (False, "http", False),
    ):
        request = Request({**scope, "scheme": scheme})
        response = Response()
        Cookies(Sealer(b"k" * 32), https=https).set_session(request, response, Session.new())
        cookie = response.headers["set-cookie"]
        assert ("Secure" in cookie) is secure
        assert "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()


def test_forged_or_missing_csrf_tokens_are_refused(
    console: Console, signed_in: SignedIn, new_page: NewPage
) -> None:
    app = console.app
    connection_id = connection_of(app, console.admin.account_id)
    page = signed_in(console, console.admin)
    page.goto(console.url("/connections"))
    stranger = new_page()
    stranger.goto(console.url("/signin"))
    other_session_token = csrf_token(stranger)
    path = f"/connections/{connection_id}/pause"
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": other_session_token}):
        answer = post(page, console, path, data)
        assert answer.status == 403
        assert "Form refused" in answer.text()
        assert_security_headers(answer.headers)
    assert app.connections.get(OPERATOR, connection_id).status == "active"
    answer = post(page, console, path, {"csrf_token": csrf_token(page)})
    assert answer.status == 303
    # The sign-in form has its token too: a login from another site is refused.
    answer = post(
        stranger, console, "/signin", {"email": console.admin.email, "password": "whatever"}
    )
    assert answer.status == 403


def test_every_console_answer_carries_the_security_headers(
    console: Console, signed_in: SignedIn
) -> None:
    viewer = signed_in(console, console.viewer)
    viewer.goto(console.url("/connections"))
    for path, status in (
        ("/signin", 303),
        ("/connections", 200),
        ("/credentials", 200),
        ("/connections/new", 403),
        ("/connections/999999", 404),
        ("/connections/abc", 404),
        ("/static/console.css", 200),
        ("/static/console.js", 200),
        ("/", 303),
    ):
        answer = viewer.request.get(console.url(path), max_redirects=0)
        assert answer.status == status, path
        assert_security_headers(answer.headers)
        if not path.startswith("/static"):
            assert answer.headers["cache-control"] == "no-store", path


def test_sessions_expire_and_sealed_values_keep_to_their_purpose() -> None:
    sealer = Sealer(b"k" * 32)
    session = Session.new(email="a@b.example", now=1000)
    token = sealer.seal(session.to_dict(), purpose="session")
    assert Session.from_dict(sealer.open(token, purpose="session") or {}, now=1001) == session
    assert Session.from_dict(session.to_dict(), now=session.expires) is None
    assert sealer.open(token, purpose="flash") is None
    assert sealer.open(token[:-2], purpose="session") is None
    assert Sealer(b"j" * 32).open(token, purpose="session") is None
