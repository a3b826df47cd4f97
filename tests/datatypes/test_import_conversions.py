"""Conversions through the real pipeline: orders and their items, payouts, duplicates,
big files, zips, and exactly-once import when processing fails half-way."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dropyard.app import Dropyard
from dropyard.datatypes import conversions
from dropyard.datatypes.base import ImportContext
from dropyard.datatypes.schema import ParseContext
from dropyard.db.engine import transaction
from dropyard.files.models import File
from dropyard.ledger.models import Action, ActionItem
from tests.datatypes.helpers import read
from tests.datatypes.test_import_world import (
    CAMPAIGN,
    CAMPAIGN_B,
    LOCK_DAYS,
    OP,
    PARTNER_A,
    PARTNER_B,
    PARTNER_C,
    TRACKER,
    TRACKER_B,
    conversion,
    conversions_file,
    days_ago,
    iso,
    make_world,
)


def test_orders_become_pending_actions_with_their_payout(app: Dropyard) -> None:
    world = make_world(app)
    world.click("clk-b", partner=PARTNER_B)
    when = days_ago(2)
    outcome = world.run(
        "conversions",
        conversions_file(
            [
                conversion("ORD-1", EventDate=iso(when)),
                conversion("ORD-2", ClickId="clk-b", MediaPartnerId=None, Amount="59.90"),
            ]
        ),
    )

    assert outcome.state == "processed"
    assert outcome.summary["status"] == "COMPLETED"
    assert (outcome.summary["totalRowCount"], outcome.summary["successfulRowCount"]) == (2, 2)
    assert outcome.errors == []
    first, second = world.actions()
    assert (first.order_id, first.partner_id, first.amount, first.payout) == (
        "ORD-1",
        PARTNER_A,
        Decimal("100.00"),
        Decimal("8.00"),
    )
    assert first.status == "PENDING"
    assert first.original_amount == first.amount
    assert first.event_date == when
    assert first.locks_at == when + timedelta(days=LOCK_DAYS)
    assert first.file_id == outcome.file_id
    # The click gives the partner, whose rate in the campaign is overridden to 10 %.
    assert (second.partner_id, second.click_id, second.payout) == (
        PARTNER_B,
        "clk-b",
        Decimal("5.99"),
    )


def test_payout_is_rounded_half_to_even(app: Dropyard) -> None:
    world = make_world(app)
    amounts = {"A": "1.25", "B": "1.35", "C": "0.05", "D": "0.15"}
    rows = [conversion(o, MediaPartnerId=PARTNER_B, Amount=a) for o, a in amounts.items()]
    world.run("conversions", conversions_file(rows))

    payouts = {a.order_id: a.payout for a in world.actions()}
    # 0.125 → 0.12, 0.135 → 0.14, 0.005 → 0.00, 0.015 → 0.02 (half-up would give 0.13, 0.01).
    assert payouts == {
        "A": Decimal("0.12"),
        "B": Decimal("0.14"),
        "C": Decimal("0.00"),
        "D": Decimal("0.02"),
    }


def test_item_rows_add_up_to_the_order(app: Dropyard) -> None:
    world = make_world(app)
    item = {"Amount": None}
    data = conversions_file(
        [
            conversion("ORD-1", **item, Sku="A", ItemPrice="10.00", Quantity=3),
            conversion("ORD-1", **item, Sku="B", ItemSubtotal="15.55"),
            conversion("ORD-1", Sku="C", Amount="4.45"),
            conversion("ORD-2", Amount="20.00"),
        ]
    )
    outcome = world.run("conversions", data)

    assert outcome.state == "processed"
    assert outcome.summary["successfulRowCount"] == 4
    order, whole = world.actions()
    assert (order.amount, order.payout) == (Decimal("50.00"), Decimal("4.00"))
    assert whole.amount == Decimal("20.00")
    with app.sessions() as session:
        items = session.execute(
            select(
                ActionItem.action_id, ActionItem.sku, ActionItem.quantity, ActionItem.amount
            ).order_by(ActionItem.id)
        ).all()
    assert [tuple(i) for i in items] == [
        (order.id, "A", 3, Decimal("30.00")),
        (order.id, "B", 1, Decimal("15.55")),
        (order.id, "C", 1, Decimal("4.45")),
    ]


def test_an_order_with_a_bad_line_is_not_imported_at_all(app: Dropyard) -> None:
    world = make_world(app)
    data = conversions_file(
        [
            conversion("ORD-1", Amount=None, Sku="A", ItemPrice="10.00"),
            conversion("ORD-1", Amount=None, Sku="B", ItemPrice="10.00", MediaPartnerId=PARTNER_C),
            conversion("ORD-1", Amount=None, Sku="C", ItemPrice="10.00"),
            conversion("ORD-2"),
        ]
    )
    outcome = world.run("conversions", data)

    assert outcome.state == "partial"
    assert outcome.codes() == [
        (2, "UNKNOWN_PARTNER"),
        (3, "UNKNOWN_PARTNER"),
        (4, "UNKNOWN_PARTNER"),
    ]
    assert f"MediaPartnerId '{PARTNER_C}' is not a partner" in outcome.message(3)
    assert "line 3 failed" in outcome.message(2)
    assert "not imported" in outcome.message(4)
    assert [a.order_id for a in world.actions()] == ["ORD-2"]
    assert world.count(ActionItem) == 0


def test_lines_of_one_order_must_agree_on_partner_and_currency(app: Dropyard) -> None:
    world = make_world(app)
    data = conversions_file(
        [
            conversion("ORD-1", Amount="1.00", Sku="A"),
            conversion("ORD-1", Amount="1.00", Sku="B", MediaPartnerId=PARTNER_B),
            conversion("ORD-2", Amount="1.00", Sku="A"),
            conversion("ORD-2", Amount="1.00", Sku="B", CurrencyCode="EUR"),
        ]
    )
    outcome = world.run("conversions", data)

    assert outcome.codes() == [
        (2, "UNKNOWN_PARTNER"),
        (3, "UNKNOWN_PARTNER"),
        (4, "INVALID_CURRENCY"),
        (5, "INVALID_CURRENCY"),
    ]
    assert world.actions() == []


def test_an_order_seen_before_is_a_duplicate(app: Dropyard) -> None:
    world = make_world(app)
    world.run("conversions", conversions_file([conversion("ORD-1")]))
    again = world.run(
        "conversions",
        conversions_file(
            [
                conversion("ORD-1", Amount="5.00"),
                conversion("ORD-2"),
                conversion("ORD-2"),
                # The same OrderId under another campaign and tracker is another order.
                conversion("ORD-1", CampaignId=CAMPAIGN_B, ActionTrackerId=TRACKER_B,
                           MediaPartnerId=PARTNER_C),
            ]
        ),
    )  # fmt: skip

    assert again.codes() == [(2, "DUPLICATE_ORDER"), (4, "DUPLICATE_ORDER")]
    assert "already exists" in again.message(2)
    assert "is already on line 3 of this file" in again.message(4)
    assert [(a.campaign_id, a.order_id, a.amount) for a in world.actions()] == [
        (CAMPAIGN, "ORD-1", Decimal("100.00")),
        (CAMPAIGN, "ORD-2", Decimal("100.00")),
        (CAMPAIGN_B, "ORD-1", Decimal("100.00")),
    ]


def test_the_same_bytes_twice_are_imported_once(app: Dropyard) -> None:
    world = make_world(app)
    data = conversions_file([conversion("ORD-1"), conversion("ORD-2")])
    first = world.run("conversions", data)
    second = world.run("conversions", data)

    assert (first.state, second.state) == ("processed", "duplicate")
    assert second.summary["status"] == "DUPLICATE"
    assert [e["errorType"] for e in second.summary["fileErrors"]] == ["DUPLICATE_FILE"]
    assert len(world.actions()) == 2


def test_an_old_event_is_locked_on_arrival(app: Dropyard) -> None:
    world = make_world(app)
    world.run("conversions", conversions_file([conversion("OLD", EventDate=iso(days_ago(40)))]))

    (action,) = world.actions()
    assert action.status == "LOCKED"
    assert action.locks_at < action.created_at


def test_a_zip_of_two_files_imports_both(app: Dropyard) -> None:
    world = make_world(app)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("monday.csv", conversions_file([conversion("ORD-1"), conversion("ORD-2")]))
        archive.writestr(
            "tuesday.csv", conversions_file([conversion("ORD-3"), conversion("ORD-1")])
        )
    outcome = world.run("conversions", buffer.getvalue(), name="week.zip")

    assert outcome.state == "partial"
    assert outcome.summary["totalRowCount"] == 4
    assert [e["ErrorType"] for e in outcome.errors] == ["DUPLICATE_ORDER"]
    (error,) = outcome.errors
    assert error["LineNumber"] == "6"  # lines count on across the entries
    assert "ORD-1" in error["ErrorMessage"]
    assert [a.order_id for a in world.actions()] == ["ORD-1", "ORD-2", "ORD-3"]


@pytest.mark.slow
def test_one_bad_row_in_a_hundred_thousand(app: Dropyard) -> None:
    world = make_world(app)
    world.click("clk-1", partner=PARTNER_B)
    total, bad_line = 100_000, 54_321
    date = iso(days_ago(1))
    lines = [
        "CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,MediaPartnerId,CurrencyCode,Amount"
    ]
    for n in range(2, total + 2):
        campaign = "9999" if n == bad_line else str(CAMPAIGN)
        attribution = "clk-1," if n % 10 == 0 else f",{PARTNER_A}"
        lines.append(
            f"{campaign},{TRACKER},{date},ORD-{n},{attribution},USD,{n % 997}.{n % 100:02d}"
        )
    data = ("\n".join(lines) + "\n").encode()

    started = time.perf_counter()
    outcome = world.run("conversions", data)
    elapsed = time.perf_counter() - started

    assert outcome.state == "partial"
    assert (outcome.summary["totalRowCount"], outcome.summary["errorRowCount"]) == (total, 1)
    assert outcome.codes() == [(bad_line, "UNKNOWN_CAMPAIGN")]
    assert world.count(Action) == total - 1
    with app.sessions() as session:
        by_click = session.scalar(select(Action.partner_id).where(Action.order_id == "ORD-10"))
    assert by_click == PARTNER_B
    assert elapsed < 120, f"{total} rows took {elapsed:.1f}s"


def _fail_on_chunk(monkeypatch: pytest.MonkeyPatch, chunk: int, rows: int) -> None:
    """Chunks of `rows` rows; writing the `chunk`-th raises, as a lost database would."""
    write = conversions.ConversionsImporter._write
    calls = {"n": 0}

    def failing(self: conversions.ConversionsImporter, accepted: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == chunk:
            raise RuntimeError("the database went away")
        return write(self, accepted)

    def small(self: conversions.Conversions, session: Session, ctx: ImportContext) -> Any:
        return conversions.ConversionsImporter(session, ctx, chunk_rows=rows)

    monkeypatch.setattr(conversions.ConversionsImporter, "_write", failing)
    monkeypatch.setattr(conversions.Conversions, "importer", small)


def test_a_failure_half_way_imports_nothing_and_a_retry_imports_each_row_once(
    app: Dropyard, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(app)
    rows = [conversion(f"ORD-{n}") for n in range(50)]
    file_id, _ = world.upload("conversions", conversions_file(rows))

    with monkeypatch.context() as patched:
        _fail_on_chunk(patched, chunk=3, rows=10)
        assert app.processor.process(file_id) == "received"

    view, _ = app.files.get(OP, file_id)
    assert view.state == "received" and view.attempts == 1
    assert world.count(Action) == 0
    # Its retry is due later; time passes.
    world.change(lambda s: update(File).where(File.id == file_id).values(not_before=None))

    assert app.processor.process(file_id) == "processed"
    actions = world.actions()
    assert sorted(a.order_id for a in actions) == sorted(f"ORD-{n}" for n in range(50))
    assert app.processor.process(file_id) is None  # done: it cannot be claimed again
    assert world.count(Action) == 50


def _drive(app: Dropyard, file_id: int, world_account: int, data: bytes) -> list[tuple[int, str]]:
    """Import the way the pipeline would if it told the importer about the lines the
    schema refused (`ConversionsImporter.rejected`). Returns the rejected (line, code)."""
    header, raws = read(data)
    bound = conversions.SCHEMA.bind(
        header, context=ParseContext(tz=UTC, now=datetime.now(UTC), max_age_days=88)
    )
    rejected: list[tuple[int, str]] = []
    with transaction(app.sessions) as session:
        ctx = ImportContext(
            file_id=file_id,
            account_id=world_account,
            connection_id=0,
            timezone=ZoneInfo("UTC"),
            now=bound.context.now,
            window_days=88,
            actor="tests",
            reject=lambda row, error: rejected.append((row.line, error.code)),
        )
        importer = conversions.ConversionsImporter(session, ctx, chunk_rows=2)
        for raw in raws:
            checked = bound.validate(raw)
            if isinstance(checked, list):
                rejected.append((raw.line, checked[0].code))
                importer.rejected(
                    raw.line, dict(zip(header, raw.fields or [], strict=False)), checked[0].code
                )
            else:
                importer.add(checked)
        importer.finish(total_rows=len(raws), rejected_rows=0)
    return sorted(rejected)


def _spoiled_orders() -> bytes:
    item = {"Amount": None, "ItemPrice": "1.00"}
    return conversions_file(
        [
            conversion("ORD-1", **item, Sku="A"),
            conversion("ORD-1", **item, Sku="B", EventDate="2026-13-01"),  # refused by the schema
            conversion("ORD-1", **item, Sku="C"),
            conversion("ORD-2", **item, Sku="A", CurrencyCode="XYZ"),  # the first line of ORD-2
            conversion("ORD-2", **item, Sku="B"),
            conversion("ORD-3"),
            conversion("ORD-2", **item, Sku="C"),  # not consecutive
        ]
    )


def test_an_order_with_a_line_the_schema_refused_is_refused_whole(app: Dropyard) -> None:
    world = make_world(app)
    file_id, _ = world.upload("conversions", b"not processed")

    rejected = _drive(app, file_id, world.brand_id, _spoiled_orders())

    assert rejected == [
        (2, "INVALID_DATE"),
        (3, "INVALID_DATE"),
        (4, "INVALID_DATE"),
        (5, "INVALID_CURRENCY"),
        (6, "INVALID_CURRENCY"),
        (8, "ITEMS_NOT_CONSECUTIVE"),
    ]
    assert [a.order_id for a in world.actions()] == ["ORD-3"]


def test_through_the_pipeline_an_order_with_a_refused_line_is_refused_whole(
    app: Dropyard,
) -> None:
    world = make_world(app)
    world.run("conversions", _spoiled_orders())

    assert [a.order_id for a in world.actions()] == ["ORD-3"]


def test_repeats_are_found_across_chunks(app: Dropyard, monkeypatch: pytest.MonkeyPatch) -> None:
    world = make_world(app)

    def small(self: conversions.Conversions, session: Session, ctx: ImportContext) -> Any:
        return conversions.ConversionsImporter(session, ctx, chunk_rows=2)

    monkeypatch.setattr(conversions.Conversions, "importer", small)
    item = {"Amount": None, "ItemSubtotal": "5.00"}
    outcome = world.run(
        "conversions",
        conversions_file(
            [
                conversion("ORD-1", **item, Sku="A"),
                conversion("ORD-1", **item, Sku="B"),
                conversion("ORD-2"),
                conversion("ORD-3"),
                conversion("ORD-1", **item, Sku="C"),
                conversion("ORD-2"),
            ]
        ),
    )

    assert outcome.codes() == [(6, "ITEMS_NOT_CONSECUTIVE"), (7, "DUPLICATE_ORDER")]
    assert "is already earlier in this file" in outcome.message(7)
    assert [(a.order_id, a.amount) for a in world.actions()] == [
        ("ORD-1", Decimal("10.00")),
        ("ORD-2", Decimal("100.00")),
        ("ORD-3", Decimal("100.00")),
    ]
