"""The connection wizard in a browser: every combination the rules allow, walked without
JavaScript as a person would, the one-time credentials panel, going back, field errors,
keyboard-only use, and the immediate switch of detail fields with JavaScript."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Page, expect

from dropyard.connections.rules import DATA_TYPE_LABELS, DIRECTION_LABELS, ROWS
from dropyard.credentials.service import NewCredentialInput
from tests.support import OPERATOR, unique
from tests.ui.conftest import NewPage, SignedIn
from tests.ui.pages import post, shot, sign_in
from tests.ui.server import SCREENSHOTS, Console

pytestmark = pytest.mark.xdist_group("ui")

# Valid details for each (methodology, method), as a person types them; and the
# credential each walk uses, so that every kind is made at least once.
PLANS: dict[tuple[str, str], dict[str, Any]] = {
    ("push", "sftp"): {"details": {"file_pattern": "*.csv"}, "credential": "hosted_public_key"},
    ("push", "ftp"): {"details": {"plain_ftp": True}, "credential": "hosted_password"},
    ("push", "email"): {
        "details": {
            "file_pattern": "*.csv",
            "return_email": "ops@partner.example",
            "allowed_senders": "@partner.example",
        },
        "credential": None,
    },
    ("pull", "sftp"): {
        "details": {"host": "sftp.partner.example", "folder": "/out", "file_pattern": "*.csv"},
        "credential": "remote_key_pair",
    },
    ("pull", "ftp"): {
        "details": {
            "host": "ftp.partner.example",
            "port": "2121",
            "folder": "/out",
            "file_pattern": "orders_*.csv",
            "schedule": "daily",
        },
        "credential": "remote_password",
    },
    ("pull", "email"): {
        "details": {"host": "imap.partner.example", "file_pattern": "*.csv"},
        "credential": "remote_password",
    },
    ("hosted", "sftp"): {
        "details": {"format": "tsv", "retention_days": "7"},
        "credential": "hosted_password",
    },
    ("hosted", "ftp"): {"details": {}, "credential": "existing"},
    ("deliver", "sftp"): {
        "details": {"host": "sftp.partner.example", "folder": "/in"},
        "credential": "remote_password",
    },
    ("deliver", "ftp"): {
        "details": {"host": "ftp.partner.example", "folder": "/in", "compression": "gzip"},
        "credential": "remote_password",
    },
    ("deliver", "email"): {
        "details": {"recipients": "ops@partner.example, bi@partner.example"},
        "credential": None,
    },
}
COMBINATIONS = [(r.direction, r.methodology, m, r.data_types[0]) for r in ROWS for m in r.methods]
PRESELECTED = {"inbound": "push", "outbound": "hosted"}


def test_the_plans_cover_every_combination_the_rules_allow() -> None:
    assert {(mt, m) for _, mt, m, _ in COMBINATIONS} == set(PLANS)


def public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " partner@laptop"


def next_step(page: Page) -> None:
    page.get_by_role("button", name="Next", exact=True).click()


def at_step(page: Page, label: str) -> None:
    expect(page.locator("#step-title")).to_have_text(label)
    expect(page.locator(".steps [aria-current=step]")).to_contain_text(label)


def fill_details(page: Page, details: dict[str, Any]) -> None:
    for name, value in details.items():
        field = page.locator(f"#f-details-{name}")
        if value is True:
            field.check()
        elif field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def choose_method(page: Page, method: str, methodology: str) -> None:
    """Without JavaScript: choose, then press Update fields to redraw the detail fields."""
    if not page.locator(f"#f-method-{method}").is_checked():
        page.locator(f"#f-method-{method}").check()
        page.get_by_role("button", name="Update fields").click()
    if not page.locator(f"#f-methodology-{methodology}").is_checked():
        page.locator(f"#f-methodology-{methodology}").check()
        page.get_by_role("button", name="Update fields").click()
    expect(page.locator("#f-shown")).to_have_value(f"{method}:{methodology}")


@pytest.mark.parametrize(
    ("direction", "methodology", "method", "data_type"),
    COMBINATIONS,
    ids=[f"{d}-{mt}-{m}" for d, mt, m, _ in COMBINATIONS],
)
def test_walk_the_wizard_without_javascript(
    console: Console,
    signed_in: SignedIn,
    direction: str,
    methodology: str,
    method: str,
    data_type: str,
) -> None:
    page = signed_in(console, console.admin, javascript=False)
    walk(console, page, direction, methodology, method, data_type)


def walk(
    console: Console, page: Page, direction: str, methodology: str, method: str, data_type: str
) -> None:
    """Create a connection of one combination, as a person does, and see its one-time
    panel; then check what was created."""
    app, admin = console.app, console.admin
    plan = PLANS[(methodology, method)]
    tag = f"{direction}-{methodology}-{method}"
    if console.database != "sqlite":
        tag += f"-{console.database}"
    existing_id: int | None = None
    if plan["credential"] == "existing":
        existing_id = app.credentials.create(
            OPERATOR,
            account=admin.account_id,
            spec=NewCredentialInput(kind="hosted_password", name=unique("shared login")),
        ).credential.id
    name = unique(f"Feed {tag}")

    page.goto(console.url("/connections"))
    page.get_by_role("link", name="Create Connection").click()
    at_step(page, "Direction")
    shot(page, f"wizard-{tag}-1-direction")
    page.get_by_label("Connection name").fill(name)
    page.get_by_label(DIRECTION_LABELS[direction]).check()
    next_step(page)

    at_step(page, "Type")
    shot(page, f"wizard-{tag}-2-type")
    page.get_by_label(DATA_TYPE_LABELS[data_type], exact=True).check()
    next_step(page)

    at_step(page, "Method")
    expect(page.locator("#f-method-sftp")).to_be_checked()
    expect(page.locator(f"#f-methodology-{PRESELECTED[direction]}")).to_be_checked()
    choose_method(page, method, methodology)
    fill_details(page, plan["details"])
    shot(page, f"wizard-{tag}-3-method")
    next_step(page)

    at_step(page, "Credentials")
    password = "partner-S3cret!"
    kind = plan["credential"]
    if kind is None:
        expect(page.locator(".info")).to_contain_text("takes no credential")
    elif kind == "existing":
        page.locator("#f-mode-existing").check()
        page.locator(f"#f-credential_id-{existing_id}").check()
    else:
        page.locator("#f-mode-new").check()
        page.locator(f"#f-new-kind-{kind}").check()
        page.locator("#f-new-name").fill(unique(f"login {tag}"))
        if kind == "hosted_public_key":
            page.locator("#f-new-public_key").fill(public_key())
        if kind.startswith("remote"):
            page.locator("#f-new-username").fill("dropyard")
        if kind == "remote_password":
            page.locator("#f-new-password").fill(password)
    shot(page, f"wizard-{tag}-4-credentials")
    next_step(page)

    at_step(page, "Review")
    expect(page.locator("dl.review")).to_contain_text(name)
    uri = page.locator("#review-uri").inner_text()
    scheme = {"sftp": "sftp://", "ftp": "ftp" if "plain_ftp" in plan["details"] else "ftps://"}
    expected = "mailto:" if method == "email" and methodology != "pull" else "imaps://"
    assert uri.startswith(scheme.get(method, expected))
    assert password not in page.content()
    shot(page, f"wizard-{tag}-5-review")
    page.get_by_role("button", name="Create connection").click()

    expect(page).to_have_url(re.compile(r"/connections/\d+/created$"))
    connection_id = int(page.url.rsplit("/", 2)[1])
    panel = page.locator(".provisioned")
    expect(panel.get_by_role("heading", name="Credentials provisioned")).to_be_visible()
    secret = None
    if kind == "hosted_password":
        secret = page.locator("#shown-password").inner_text()
        assert len(secret) >= 16
        expect(panel).to_contain_text("will not be shown again")
        # Without JavaScript the copy buttons stay away (the text can be selected).
        expect(panel.get_by_role("button", name="Copy password")).to_have_count(0)
    if kind == "remote_key_pair":
        expect(page.locator("#shown-public-key")).to_contain_text("ssh-ed25519 ")
    if method == "email" and methodology == "push":
        expect(page.locator("#shown-email")).to_contain_text(f"@{app.settings.mail_domain}")
    shot(page, f"wizard-{tag}-6-created")

    page.reload()
    expect(page).to_have_url(console.url(f"/connections/{connection_id}"))
    expect(page.get_by_role("heading", name="Credentials provisioned")).to_have_count(0)
    if secret:
        assert secret not in page.content()

    view = app.connections.get(OPERATOR, connection_id)
    assert (view.name, view.direction, view.data_type) == (name, direction, data_type)
    assert (view.method, view.methodology) == (method, methodology)
    if kind == "existing":
        assert view.credential_id == existing_id
    if kind == "remote_password":
        assert app.credentials.remote_secret(view.credential_id or 0).password == password
    assert (kind is None) == (view.credential_id is None)


def test_going_back_keeps_every_answer_and_the_partner_password(
    console: Console, signed_in: SignedIn
) -> None:
    app = console.app
    page = signed_in(console, console.admin)
    name = unique("Back and forth")
    page.goto(console.url("/connections/new"))
    page.get_by_label("Connection name").fill(name)
    page.get_by_label("Give data to us").check()
    next_step(page)
    page.get_by_label("Clicks", exact=True).check()
    next_step(page)
    page.locator("#f-methodology-pull").check()  # with JavaScript: the fields switch at once
    fill_details(page, {"host": "sftp.partner.example", "folder": "/drop", "file_pattern": "*"})
    next_step(page)
    page.locator("#f-mode-new").check()
    page.locator("#f-new-kind-remote_password").check()
    page.locator("#f-new-username").fill("dy")
    page.locator("#f-new-password").fill("kept-Pa55word")
    next_step(page)
    at_step(page, "Review")

    page.get_by_role("button", name="Back").click()
    at_step(page, "Credentials")
    expect(page.locator("#f-new-username")).to_have_value("dy")
    expect(page.locator("#f-new-password")).to_have_value("")
    expect(page.locator("#f-new-password-help")).to_contain_text("Leave empty to keep")
    page.get_by_role("button", name="Back").click()
    at_step(page, "Method")
    expect(page.locator("#f-methodology-pull")).to_be_checked()
    expect(page.locator("#f-details-folder")).to_have_value("/drop")
    page.get_by_role("button", name="Back").click()
    expect(page.get_by_label("Clicks", exact=True)).to_be_checked()
    page.get_by_role("button", name="Back").click()
    expect(page.get_by_label("Connection name")).to_have_value(name)
    expect(page.get_by_label("Give data to us")).to_be_checked()

    for _ in range(4):
        next_step(page)
    at_step(page, "Review")
    page.get_by_role("button", name="Create connection").click()
    expect(page.get_by_role("heading", name="Credentials provisioned")).to_be_visible()
    # With JavaScript, the copy buttons appear and copy what they stand next to.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy login").click()
    expect(page.get_by_role("button", name="Copied login")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "dy"
    view = next(c for c in app.connections.list_connections(OPERATOR) if c.name == name)
    assert app.credentials.remote_secret(view.credential_id or 0).password == "kept-Pa55word"


def test_every_field_error_shows_next_to_its_field_and_nothing_is_created(
    console: Console, signed_in: SignedIn
) -> None:
    app = console.app
    before = len(app.connections.list_connections(OPERATOR))
    page = signed_in(console, console.admin, javascript=False)
    taken = app.connections.list_connections(OPERATOR, account=console.admin.account_id)

    def errors_at(fields: dict[str, str]) -> None:
        expect(page.locator("#error-summary")).to_be_visible()
        for field, text in fields.items():
            error = page.locator(f"#{field}-error")
            expect(error).to_contain_text(text)
            described = page.locator(f"#{field}").get_attribute("aria-describedby") or ""
            assert f"{field}-error" in described.split()
            expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")

    page.goto(console.url("/connections/new"))
    next_step(page)
    errors_at({"f-name": "name is required", "f-direction": "direction is required"})
    shot(page, "wizard-errors-1-direction")
    if taken:
        page.get_by_label("Connection name").fill(taken[0].name.upper())
        page.get_by_label("Give data to us").check()
        next_step(page)
        errors_at({"f-name": "already exists"})
    page.get_by_label("Connection name").fill("bad/name")
    page.get_by_label("Give data to us").check()
    next_step(page)
    errors_at({"f-name": "must not contain '/'"})
    page.get_by_label("Connection name").fill(unique("Refused"))
    next_step(page)

    next_step(page)
    errors_at({"f-data_type": "data_type is required"})
    page.get_by_label("Conversions", exact=True).check()
    next_step(page)

    choose_method(page, "sftp", "pull")
    fill_details(
        page,
        {
            "host": "sftp://sftp.partner.example",
            "port": "0",
            "folder": "relative/path",
            "file_pattern": "a/b",
            "schedule": "whenever",
            "host_key_fingerprint": "MD5:ab",
            "timezone": "Mars/Olympus",
            "stable_seconds": "many",
        },
    )
    next_step(page)
    errors_at(
        {
            "f-details-host": "must not include a scheme",
            "f-details-port": "not between 1 and 65535",
            "f-details-folder": "must be an absolute path",
            "f-details-file_pattern": "must not contain '/'",
            "f-details-schedule": "not a preset or a valid cron expression",
            "f-details-host_key_fingerprint": "SHA256:",
            "f-details-timezone": "not a known time zone",
            "f-details-stable_seconds": "not a whole number",
        }
    )
    shot(page, "wizard-errors-3-method")
    expect(page.locator("#f-details-folder")).to_have_value("relative/path")  # as typed
    fill_details(
        page,
        {
            "host": "sftp.partner.example",
            "port": "22",
            "folder": "/out",
            "file_pattern": "*.csv",
            "schedule": "hourly",
            "host_key_fingerprint": "",
            "timezone": "UTC",
            "stable_seconds": "30",
        },
    )
    next_step(page)

    at_step(page, "Credentials")
    page.locator("#f-mode-new").check()
    page.locator("#f-new-kind-remote_password").check()
    page.locator("#f-new-name").fill("")
    next_step(page)
    errors_at(
        {
            "f-new-name": "required",
            "f-new-username": "login on the partner's server is required",
            "f-new-password": "password on the partner's server is required",
        }
    )
    shot(page, "wizard-errors-4-credentials")
    assert len(app.connections.list_connections(OPERATOR)) == before


def test_a_pasted_key_that_is_not_a_key_is_refused_at_its_step(
    console: Console, signed_in: SignedIn
) -> None:
    page = signed_in(console, console.admin)
    page.goto(console.url("/connections/new"))
    page.get_by_label("Connection name").fill(unique("Keyed"))
    page.get_by_label("Give data to us").check()
    next_step(page)
    page.get_by_label("Clicks", exact=True).check()
    next_step(page)
    next_step(page)  # SFTP, push: the preselection
    page.locator("#f-mode-new").check()
    page.locator("#f-new-kind-hosted_public_key").check()
    page.locator("#f-new-public_key").fill("ssh-dss AAAAB3NzaC1kc3MAAACBAP not a key")
    next_step(page)
    at_step(page, "Credentials")
    expect(page.locator("#f-new-public_key-error")).to_be_visible()


def test_a_changed_or_foreign_wizard_state_is_refused(
    console: Console, signed_in: SignedIn
) -> None:
    page = signed_in(console, console.admin)
    page.goto(console.url("/connections/new"))
    token = page.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    state = page.locator("input[name=state]").get_attribute("value") or ""
    assert "direction" not in state  # sealed, not readable
    changed = state[:-4] + ("AAAA" if not state.endswith("AAAA") else "BBBB")
    answer = post(
        page,
        console,
        "/connections/new",
        {"csrf_token": token, "state": changed, "action": "next", "name": "x"},
    )
    assert answer.status == 400
    assert "start again" in answer.text()
    # The same state in another session (another browser) does not open there.
    other = signed_in(console, console.admin, javascript=False)
    other.goto(console.url("/connections/new"))
    other_token = other.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    answer = post(
        other,
        console,
        "/connections/new",
        {"csrf_token": other_token, "state": state, "action": "back"},
    )
    assert answer.status == 400


def test_keyboard_only_walk_of_the_first_steps(console: Console, signed_in: SignedIn) -> None:
    page = signed_in(console, console.admin)
    page.goto(console.url("/connections/new"))

    def focused() -> str:
        return str(page.evaluate("document.activeElement.id"))

    def tab_to(element_id: str, limit: int = 25) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if focused() == element_id:
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", f"no visible focus on {element_id}"
                return
        raise AssertionError(f"Tab never reached #{element_id}; stuck at #{focused()}")

    tab_to("f-name")
    page.keyboard.type("Keyboard Feed")
    page.keyboard.press("Tab")
    assert focused() == "f-direction-inbound"
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")  # arrows move the choice within the group
    assert focused() == "f-direction-outbound"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # Enter in a text field is Next, never Back
    at_step(page, "Type")
    shot(page, "wizard-keyboard-2-type")

    tab_to("f-data_type-reports")
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Next"
    page.keyboard.press("Enter")
    at_step(page, "Method")
    expect(page.locator("#f-methodology-hosted")).to_be_checked()

    tab_to("f-method-sftp")
    page.keyboard.press("ArrowRight")
    assert focused() == "f-method-ftp"
    expect(page.locator("#f-details-plain_ftp")).to_be_visible()  # switched at once
    page.keyboard.press("Tab")
    assert focused() == "f-methodology-hosted"
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "Back":
            break
    page.keyboard.press("Enter")
    at_step(page, "Type")
    expect(page.locator("#f-data_type-reports")).to_be_checked()
    shot(page, "wizard-keyboard-back")


def test_with_javascript_the_detail_fields_switch_at_once(
    console: Console, signed_in: SignedIn
) -> None:
    page = signed_in(console, console.admin)
    page.goto(console.url("/connections/new"))
    page.get_by_label("Connection name").fill(unique("Switching"))
    page.get_by_label("Receive data from us").check()
    next_step(page)
    page.get_by_label("Reports", exact=True).check()
    next_step(page)
    at_step(page, "Method")
    expect(page.get_by_role("button", name="Update fields")).to_be_hidden()
    url = page.url
    page.locator("#f-method-email").check()
    expect(page.locator("#f-methodology-hosted")).to_be_disabled()
    expect(page.locator("#f-methodology-deliver")).to_be_checked()
    expect(page.locator("#f-details-recipients")).to_be_visible()
    assert page.url == url
    page.locator("#f-method-ftp").check()
    page.locator("#f-methodology-hosted").check()
    expect(page.locator("#f-details-retention_days")).to_be_visible()
    expect(page.locator("#f-details-recipients")).to_have_count(0)
    page.locator("#f-method-email").check()
    page.locator("#f-details-recipients").fill("a@partner.example")
    shot(page, "wizard-javascript-method")
    next_step(page)
    at_step(page, "Credentials")
    expect(page.locator(".info")).to_contain_text("Dropyard's own relay")


def test_the_wizard_at_375_pixels_wide(console: Console, new_page: NewPage) -> None:
    page = new_page(width=375, height=800)
    sign_in(page, console, console.admin)
    page.goto(console.url("/connections/new"))
    page.get_by_label("Connection name").fill(unique("Narrow"))
    page.get_by_label("Give data to us").check()
    next_step(page)
    page.get_by_label("Conversions", exact=True).check()
    next_step(page)
    page.locator("#f-methodology-pull").check()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=str(SCREENSHOTS / "wizard-375px-method.png"), full_page=True)
