"""Action modifications through the real pipeline: new amounts, reversals, resets, the
history they leave, and what a locked action refuses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select, update

from dropyard.app import Dropyard
from dropyard.ledger.models import Action, ActionModification
from tests.datatypes.test_import_world import (
    PARTNER_B,
    TRACKER,
    World,
    conversion,
    conversions_file,
    csv_bytes,
    days_ago,
    make_world,
)

HEADER = ("ActionId", "OrderId", "ActionTrackerId", "Amount", "Reason", "CustomerStatus")


def modifications(rows: Sequence[dict[str, object]]) -> bytes:
    return csv_bytes(HEADER, [[r.get(c) for c in HEADER] for r in rows])


def imported(world: World, *orders: str, **given: object) -> list[Action]:
    world.run("conversions", conversions_file([conversion(o, **given) for o in orders]))
    return world.actions()


def history(app: Dropyard) -> list[tuple[object, ...]]:
    with app.sessions() as session:
        rows = session.execute(
            select(
                ActionModification.action_id,
                ActionModification.reason,
                ActionModification.old_amount,
                ActionModification.new_amount,
                ActionModification.old_status,
                ActionModification.new_status,
            ).order_by(ActionModification.id)
        )
        return [tuple(r) for r in rows]


def test_a_new_amount_recomputes_the_payout_and_is_kept_in_history(app: Dropyard) -> None:
    world = make_world(app)
    (action,) = imported(world, "ORD-1", MediaPartnerId=PARTNER_B)  # rate 0.10
    outcome = world.run(
        "action_modifications",
        modifications([{"ActionId": action.id, "Amount": "80.05", "Reason": "ITEM_RETURNED"}]),
    )

    assert outcome.state == "processed"
    (changed,) = world.actions()
    assert (changed.amount, changed.payout, changed.status) == (
        Decimal("80.05"),
        Decimal("8.00"),  # 8.005 → 8.00, half to even
        "PENDING",
    )
    assert changed.original_amount == Decimal("100.00")
    assert changed.modification_count == 1
    assert changed.modified_at > action.modified_at
    assert history(app) == [
        (action.id, "ITEM_RETURNED", Decimal("100.00"), Decimal("80.05"), "PENDING", "PENDING")
    ]
    with app.sessions() as session:
        record = session.scalars(select(ActionModification)).one()
    assert record.file_id == outcome.file_id
    assert record.actor == f"file:{outcome.summary['traceId']}"


def test_zero_reverses_and_reset_restores_in_file_order(app: Dropyard) -> None:
    world = make_world(app)
    first, second = imported(world, "ORD-1", "ORD-2")
    rows = [
        # Found by OrderId and ActionTrackerId as well as by ActionId.
        {"OrderId": "ORD-1", "ActionTrackerId": TRACKER, "Amount": "60", "Reason": "ORDER_UPDATE"},
        {"ActionId": first.id, "Amount": "0", "Reason": "CONSUMER_FRAUD"},
        {"ActionId": second.id, "Amount": "0", "Reason": "TEST_ACTION"},
        {"ActionId": first.id, "Amount": "0", "Reason": "RESET"},  # Amount is ignored
    ]  # fmt: skip
    outcome = world.run("action_modifications", modifications(rows))

    assert outcome.state == "processed", outcome.errors
    one, two = world.actions()
    assert (one.amount, one.payout, one.status, one.modification_count) == (
        Decimal("100.00"),
        Decimal("8.00"),
        "PENDING",
        3,
    )
    assert (two.amount, two.payout, two.status) == (Decimal("0.00"), Decimal("0.00"), "REVERSED")
    assert [(r[0], r[1], r[3], r[5]) for r in history(app)] == [
        (first.id, "ORDER_UPDATE", Decimal("60.00"), "PENDING"),
        (first.id, "CONSUMER_FRAUD", Decimal("0.00"), "REVERSED"),
        (second.id, "TEST_ACTION", Decimal("0.00"), "REVERSED"),
        (first.id, "RESET", Decimal("100.00"), "PENDING"),
    ]


def test_zero_on_an_action_of_zero_is_a_modification_not_a_reversal(app: Dropyard) -> None:
    world = make_world(app)
    (action,) = imported(world, "FREE", Amount="0.00")
    rows = [
        {"ActionId": action.id, "Amount": "0", "Reason": "ORDER_UPDATE", "CustomerStatus": "NEW"}
    ]
    outcome = world.run("action_modifications", modifications(rows))

    assert outcome.state == "processed", outcome.errors
    (changed,) = world.actions()
    assert (changed.status, changed.customer_status, changed.modification_count) == (
        "PENDING",
        "NEW",
        1,
    )


def test_a_locked_action_refuses_every_change(app: Dropyard) -> None:
    world = make_world(app)
    (action,) = imported(world, "ORD-1")
    world.change(lambda s: update(Action).where(Action.id == action.id).values(status="LOCKED"))
    rows = [
        {"ActionId": action.id, "Amount": "10.00", "Reason": "ORDER_UPDATE"},
        {"ActionId": action.id, "Amount": "0", "Reason": "RESET"},
    ]
    outcome = world.run("action_modifications", modifications(rows))

    assert outcome.state == "failed"
    assert outcome.codes() == [(2, "ACTION_LOCKED"), (3, "ACTION_LOCKED")]
    (same,) = world.actions()
    assert (same.amount, same.modification_count) == (Decimal("100.00"), 0)
    assert history(app) == []


def test_an_action_past_its_lock_date_is_locked_whatever_its_status_said(app: Dropyard) -> None:
    world = make_world(app)
    (action,) = imported(world, "ORD-1")
    world.change(
        lambda s: (
            update(Action)
            .where(Action.id == action.id)
            .values(locks_at=days_ago(0) - timedelta(minutes=1))
        )
    )
    outcome = world.run(
        "action_modifications",
        modifications([{"ActionId": action.id, "Amount": "10.00", "Reason": "ORDER_UPDATE"}]),
    )

    assert outcome.codes() == [(2, "ACTION_LOCKED")]
    (locked,) = world.actions()
    assert (locked.status, locked.amount) == ("LOCKED", Decimal("100.00"))
    assert locked.modified_at > action.modified_at  # the delta feed carries the flip


def test_another_accounts_action_is_unknown(app: Dropyard) -> None:
    world = make_world(app)
    (action,) = imported(world, "ORD-1")
    other = World(app, world.other_brand_id, world.brand_id)
    outcome = other.run(
        "action_modifications",
        modifications([{"ActionId": action.id, "Amount": "10.00", "Reason": "ORDER_UPDATE"}]),
    )

    assert outcome.codes() == [(2, "UNKNOWN_ACTION")]
    assert world.actions()[0].amount == Decimal("100.00")
