"""The credentials page: each kind made by hand, what the list says of each, a generated
secret shown once, rotation with its overlap, renaming and revoking."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Page, expect

from dropyard.credentials.service import NewCredentialInput
from tests.support import OPERATOR, unique
from tests.ui.conftest import SignedIn
from tests.ui.pages import connection_of, fresh_admin, shot
from tests.ui.server import Console

pytestmark = pytest.mark.xdist_group("ui")


def create(page: Page, name: str, kind: str, **fields: str) -> None:
    page.goto(page.url.split("/credentials")[0] + "/credentials")
    page.locator("#f-new-name").fill(name)
    page.locator(f"#f-new-kind-{kind}").check()
    for field, value in fields.items():
        page.locator(f"#f-new-{field}").fill(value)
    page.get_by_role("button", name="Create credential").click()


def test_create_each_kind_and_see_it_listed(console: Console, signed_in: SignedIn) -> None:
    app = console.app
    user = fresh_admin(console)
    page = signed_in(console, user, javascript=False)
    page.goto(console.url("/credentials"))

    create(page, "drop password", "hosted_password")
    expect(page).to_have_url(re.compile(r"/credentials/\d+/issued$"))
    password = page.locator("#shown-password").inner_text()
    login = page.locator("#shown-login").inner_text()
    expect(page.locator(".provisioned")).to_contain_text("will not be shown again")
    assert app.credentials.check_password(login=login, password=password) is not None
    shot(page, "credential-issued")
    page.reload()
    expect(page).to_have_url(re.compile(r"/credentials/\d+$"))
    assert password not in page.content()

    key = Ed25519PrivateKey.generate().public_key()
    openssh = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    create(page, "laptop key", "hosted_public_key", public_key=openssh + " me@laptop")
    expect(page.get_by_role("status")).to_have_text("Credential 'laptop key' created.")
    expect(page.locator(".facts")).to_contain_text("SHA256:")

    create(page, "their server", "remote_password", username="dy", password="their-Secret1")
    expect(page.get_by_role("status")).to_have_text("Credential 'their server' created.")

    create(page, "our key", "remote_key_pair", username="dy")
    expect(page.locator("#shown-public-key")).to_contain_text("ssh-ed25519 ")

    page.goto(console.url("/credentials"))
    shot(page, "credentials-list")
    table = page.locator("#credentials")
    for name, kind in (
        ("drop password", "Password"),
        ("laptop key", "Public key"),
        ("their server", "Password on the partner's server"),
        ("our key", "Key pair for the partner's server"),
    ):
        line = table.locator("tr", has=page.get_by_role("link", name=name, exact=True))
        expect(line.locator("td[data-label='Kind']")).to_have_text(kind)
        used = line.locator("td[data-label='Last used']")
        # The hosted password logged in above (check_password): its use is recorded.
        expect(used).to_have_text(re.compile(r"^\d{4}-") if kind == "Password" else "never")
    views = app.credentials.list_credentials(OPERATOR, account=user.account_id)
    remote = next(v for v in views if v.name == "their server")
    assert app.credentials.remote_secret(remote.id).password == "their-Secret1"
    assert "their-Secret1" not in page.content()


def test_bad_input_is_shown_next_to_its_field(console: Console, signed_in: SignedIn) -> None:
    page = signed_in(console, console.admin, javascript=False)
    page.goto(console.url("/credentials"))
    create(page, "not a key", "hosted_public_key", public_key="ssh-dss AAAA nope")
    expect(page.locator("#f-new-public_key-error")).to_be_visible()
    expect(page.locator("#f-new-name")).to_have_value("not a key")
    create(page, "", "remote_password")
    expect(page.locator("#f-new-name-error")).to_contain_text("1-100 characters")
    expect(page.locator("#f-new-username-error")).to_contain_text("required")
    expect(page.locator("#f-new-password-error")).to_contain_text("required")


def test_rotate_shows_the_new_password_once_and_revoke_ends_it(
    console: Console, signed_in: SignedIn
) -> None:
    app = console.app
    made = app.credentials.create(
        OPERATOR,
        account=console.admin.account_id,
        spec=NewCredentialInput(kind="hosted_password", name=unique("rotated")),
    )
    login, old = made.credential.login or "", made.password or ""
    page = signed_in(console, console.admin, javascript=False)
    page.goto(console.url(f"/credentials/{made.credential.id}"))
    page.get_by_role("button", name="Rotate", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("the old secret keeps working")
    new = page.locator("#shown-password").inner_text()
    assert new != old
    assert app.credentials.check_password(login=login, password=new) is not None
    assert app.credentials.check_password(login=login, password=old) is not None  # overlap
    page.reload()
    assert new not in page.content()

    page.get_by_role("button", name=re.compile("^Revoke")).click()
    expect(page.get_by_role("status")).to_contain_text("revoked")
    line = page.locator(f"tr[data-credential='{made.credential.id}']")
    expect(line.locator(".status")).to_have_text("revoked")
    expect(line.get_by_role("link", name=re.compile("^Rotate"))).to_have_count(0)
    assert app.credentials.check_password(login=login, password=new) is None


def test_used_by_and_rename(console: Console, signed_in: SignedIn) -> None:
    app = console.app
    name = unique("Uses a login")
    connection_id = connection_of(app, console.admin.account_id, name=name)
    credential_id = app.connections.get(OPERATOR, connection_id).credential_id
    taken = app.credentials.create(
        OPERATOR,
        account=console.admin.account_id,
        spec=NewCredentialInput(
            kind="remote_password", name=unique("taken"), username="u", password="p"
        ),
    ).credential.name
    page = signed_in(console, console.admin, javascript=False)
    page.goto(console.url("/credentials"))
    line = page.locator(f"tr[data-credential='{credential_id}']")
    expect(line.locator("td[data-label='Used by']")).to_have_text(name)
    line.get_by_role("link", name=re.compile("^Rotate")).click()
    page.get_by_label("New name").fill(taken)
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("#f-name-error")).to_contain_text("already exists")
    page.get_by_label("New name").fill("renamed login")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_have_text("Credential renamed to 'renamed login'.")
    page.goto(console.url(f"/connections/{connection_id}"))
    expect(page.locator(".facts")).to_contain_text("renamed login")
