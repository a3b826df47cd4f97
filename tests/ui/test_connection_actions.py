"""What a connection's page does besides its settings: check a sample file of an inbound
connection (nothing imported), and make an outbound connection's file now or for a past
range — and who may do which."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.datatypes.test_import_world import CONVERSION_HEADER, csv_bytes, days_ago, iso
from tests.support import OPERATOR, unique
from tests.ui.conftest import SignedIn
from tests.ui.pages import connection_of, csrf_token, post, shot
from tests.ui.server import Console

pytestmark = pytest.mark.xdist_group("ui")

# A campaign of the Acme account for the samples to refer to (ids unused by other tests).
CAMPAIGN, TRACKER, PARTNER = 81_001, 85_001, 87_001


def _ledger(console: Console) -> None:
    ledger = console.app.ledger
    ledger.create_campaign(
        OPERATOR,
        account=console.admin.account_id,
        campaign_id=CAMPAIGN,
        name=unique("Campaign"),
        currency="USD",
        payout_rate="0.08",
        trackers=[TRACKER],
    )
    ledger.create_partner(OPERATOR, partner_id=PARTNER, name=unique("Partner"))
    ledger.join(OPERATOR, partner_id=PARTNER, campaign_id=CAMPAIGN)


def _order(order: str, currency: str = "USD") -> list[object]:
    row = {
        "CampaignId": CAMPAIGN,
        "ActionTrackerId": TRACKER,
        "EventDate": iso(days_ago(1)),
        "OrderId": order,
        "MediaPartnerId": PARTNER,
        "CurrencyCode": currency,
        "Amount": "10.00",
    }
    return [row.get(column) for column in CONVERSION_HEADER]


def test_a_member_checks_a_sample_and_nothing_is_imported(
    console: Console, signed_in: SignedIn
) -> None:
    app = console.app
    _ledger(console)
    connection_id = connection_of(app, console.admin.account_id)
    data = csv_bytes(CONVERSION_HEADER, [_order("ORD-1"), _order("ORD-2", currency="XXQ")])
    page = signed_in(console, console.member)  # read-only: not only admins
    page.goto(console.url(f"/connections/{connection_id}"))

    page.get_by_role("button", name="Check file").click()
    expect(page.locator("#f-sample-error")).to_have_text("Error: Choose a file to check.")

    page.get_by_label("Sample file", exact=True).set_input_files(
        files=[{"name": "orders.csv", "mimeType": "text/csv", "buffer": data}]
    )
    page.get_by_role("button", name="Check file").click()
    result = page.locator("#check-result")
    expect(result.get_by_role("heading")).to_have_text("Result for orders.csv")
    expect(page.locator("#check-total")).to_have_text("2")
    expect(page.locator("#check-ok")).to_have_text("1")
    expect(page.locator("#check-errors")).to_have_text("1")
    error_row = page.locator("#check-rows tbody tr")
    expect(error_row).to_have_count(1)
    expect(error_row.locator("td[data-label='Line']")).to_have_text("3")
    expect(error_row.locator("td[data-label='Code']")).to_have_text("INVALID_CURRENCY")
    expect(error_row.locator("td[data-label='Message']")).to_contain_text("XXQ")
    shot(page, "connection-check-sample")

    assert app.files.list_files(OPERATOR, connection_id=connection_id) == []
    assert list(app.files.list_folder(connection_id)) == []
    assert not list(app.settings.spool_dir.glob(".sample-*"))


def test_run_now_and_backfill(console: Console, signed_in: SignedIn) -> None:
    app = console.app
    connection_id = connection_of(
        app, console.admin.account_id, methodology="hosted", data_type="reports"
    )
    page = signed_in(console, console.admin, javascript=False)
    page.goto(console.url(f"/connections/{connection_id}"))
    expect(page.locator("#check")).to_have_count(0)  # outbound: nothing to check

    page.get_by_role("button", name="Run now").click()
    expect(page).to_have_url(console.url(f"/connections/{connection_id}/history"))
    (made,) = app.files.list_files(OPERATOR, connection_id=connection_id)
    expect(page.get_by_role("status")).to_contain_text(f"File '{made.name}' made")
    expect(page.locator(f"tr[data-file='{made.id}']")).to_contain_text(made.name)

    page.goto(console.url(f"/connections/{connection_id}"))
    page.get_by_label("From", exact=True).fill("2024-03-05")
    page.get_by_label("To", exact=True).fill("2024-03-01")
    page.get_by_role("button", name="Run backfill").click()
    expect(page.locator("#f-range_from-error")).to_contain_text("must be before")
    expect(page.get_by_label("From", exact=True)).to_have_value("2024-03-05")
    # A date input sends only dates; a hand-made form may send anything.
    answer = post(
        page,
        console,
        f"/connections/{connection_id}/run",
        {"csrf_token": csrf_token(page), "range_from": "2024-13-01", "range_to": "2024-03-01"},
    )
    assert answer.status == 422
    assert "From &#39;2024-13-01&#39; is not a date" in answer.text()
    assert len(app.files.list_files(OPERATOR, connection_id=connection_id)) == 1

    page.get_by_label("From", exact=True).fill("2024-03-01")
    page.get_by_label("To", exact=True).fill("2024-03-05")
    page.get_by_role("button", name="Run backfill").click()
    expect(page.get_by_role("status")).to_contain_text("made")
    assert len(app.files.list_files(OPERATOR, connection_id=connection_id)) == 2


def test_a_viewer_cannot_run_and_a_forged_form_is_refused(
    console: Console, signed_in: SignedIn
) -> None:
    app = console.app
    connection_id = connection_of(
        app, console.admin.account_id, methodology="hosted", data_type="reports"
    )
    viewer = signed_in(console, console.viewer)
    viewer.goto(console.url(f"/connections/{connection_id}"))
    expect(viewer.get_by_role("heading", name="Make a file")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Run now")).to_have_count(0)
    path = f"/connections/{connection_id}/run"
    assert post(viewer, console, path, {"csrf_token": csrf_token(viewer)}).status == 403
    admin = signed_in(console, console.admin)
    admin.goto(console.url(f"/connections/{connection_id}"))
    assert post(admin, console, path, {"csrf_token": "forged"}).status == 403
    assert app.files.list_files(OPERATOR, connection_id=connection_id) == []
