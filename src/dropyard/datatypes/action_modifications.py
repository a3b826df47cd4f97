"""The `action_modifications` data type (formats/action_modifications.md): new amounts
for actions already imported, reversals (Amount 0) and resets to the imported amount.

Rows apply in file order; several rows for one action apply one after the other. They
are read a chunk at a time: the chunk's actions are looked up (and locked, on PostgreSQL)
in a few queries, changed in memory, then written back in one bulk update, with one
`ActionModification` per applied row.

An action is locked once its lock period has passed, whatever its status column says: a
row for a PENDING action whose `locks_at` has passed is refused with ACTION_LOCKED, and
the action's status is set to LOCKED there and then (its `modified_at` too, so the
delta feed carries the change).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.orm import Session

from dropyard.datatypes import values as v
from dropyard.datatypes.base import ImportContext
from dropyard.datatypes.ledger_lookup import (
    ChunkedImporter,
    in_batches,
    payout_of,
    table_of,
)
from dropyard.datatypes.schema import Column, RowError, Schema, ValidRow, shown
from dropyard.ledger.models import Action, ActionModification

REASONS = (
    "CONSUMER_FRAUD",
    "CONSUMER_ERROR",
    "ITEM_RETURNED",
    "ORDER_ERROR",
    "ORDER_UPDATE",
    "PARTNER_DISPUTE",
    "ADVERTISER_DISPUTE",
    "NON_COMPLIANCE",
    "OUT_OF_STOCK",
    "TEST_ACTION",
    "RESET",
)
MAX_MODIFICATIONS = 1_000

COLUMNS = (
    Column("ActionId", "group", v.integer(min_value=1)),
    Column("OrderId", "group", v.text(), max_length=64),
    Column("ActionTrackerId", "group", v.integer(min_value=1)),
    Column("Amount", True, v.decimal(8, 2, min_value=0)),
    Column("Reason", True, v.enum(REASONS, code="INVALID_REASON")),
    Column("CustomerStatus", False, v.enum(["NEW", "EXISTING"])),
    Column("CurrencyCode", False, v.currency()),
)
SCHEMA = Schema(columns=COLUMNS, one_of=[("ActionId", ("OrderId", "ActionTrackerId"))])
SCHEMA_WITH_EXTRA = replace(SCHEMA, allow_extra=True)


class ActionModifications:
    """The data type the pipeline looks up for `action_modifications` connections."""

    name = "action_modifications"
    allow_xlsx = False

    def schema(self, *, allow_extra: bool) -> Schema:
        return SCHEMA_WITH_EXTRA if allow_extra else SCHEMA

    def importer(self, session: Session, ctx: ImportContext) -> ModificationsImporter:
        return ModificationsImporter(session, ctx)


@dataclass(slots=True)
class _Action:
    """An action as this file sees it: loaded once per chunk, changed row by row."""

    id: int
    campaign_id: int
    partner_id: int
    tracker_id: int
    order_id: str
    currency: str
    amount: Decimal
    original_amount: Decimal
    payout: Decimal
    status: str
    locks_at: datetime
    modification_count: int
    customer_status: str | None
    changed: bool = False


_COLUMNS = (
    Action.id,
    Action.campaign_id,
    Action.partner_id,
    Action.tracker_id,
    Action.order_id,
    Action.currency,
    Action.amount,
    Action.original_amount,
    Action.payout,
    Action.status,
    Action.locks_at,
    Action.modification_count,
    Action.customer_status,
)


class ModificationsImporter(ChunkedImporter):
    """One file's modifications, applied in file order a chunk at a time."""

    note = "modifications"

    def _import_chunk(self, rows: Sequence[ValidRow]) -> None:
        by_id, by_order = self._load(rows)
        history: list[dict[str, object]] = []
        for row in rows:
            action = self._find(row, by_id, by_order)
            if isinstance(action, RowError):
                self._ctx.reject(row, action)
                continue
            error = self._apply(row, action, history)
            if error is not None:
                self._ctx.reject(row, error)
        self._write(by_id.values(), history)

    def _load(
        self, rows: Sequence[ValidRow]
    ) -> tuple[dict[int, _Action], dict[tuple[int, str], _Action]]:
        """The account's actions the chunk names, by id and by (tracker, order id) —
        locked for this transaction, so a concurrent file cannot change them under us."""
        ids = {cast(int, r.values["ActionId"]) for r in rows if r.values["ActionId"] is not None}
        orders: dict[int, set[str]] = {}
        for row in rows:
            tracker, order = row.values["ActionTrackerId"], row.values["OrderId"]
            if tracker is not None and order is not None:
                orders.setdefault(cast(int, tracker), set()).add(cast(str, order))
        by_id: dict[int, _Action] = {}
        for some_ids in in_batches(ids):
            self._read(by_id, Action.id.in_(some_ids))
        for tracker_id, order_ids in orders.items():
            for some_orders in in_batches(order_ids):
                self._read(by_id, Action.tracker_id == tracker_id, Action.order_id.in_(some_orders))
        by_order: dict[tuple[int, str], _Action] = {}
        for action in sorted(by_id.values(), key=lambda a: a.id):  # the newest wins
            by_order[(action.tracker_id, action.order_id)] = action
        return by_id, by_order

    def _read(self, into: dict[int, _Action], *where: ColumnElement[bool]) -> None:
        query = (
            select(*_COLUMNS)
            .where(Action.account_id == self._ctx.account_id, *where)
            .with_for_update()
        )
        for found in self._session.execute(query):
            if found.id not in into:
                into[found.id] = _Action(**found._asdict())

    def _find(
        self,
        row: ValidRow,
        by_id: dict[int, _Action],
        by_order: dict[tuple[int, str], _Action],
    ) -> _Action | RowError:
        action_id = cast("int | None", row.values["ActionId"])
        tracker_id = cast("int | None", row.values["ActionTrackerId"])
        order_id = cast("str | None", row.values["OrderId"])
        if action_id is not None:
            action = by_id.get(action_id)
            if action is None:
                message = f"ActionId '{action_id}' is not an action of this account"
                return RowError(row.line, "UNKNOWN_ACTION", "ActionId", message)
            if (order_id is not None and order_id != action.order_id) or (
                tracker_id is not None and tracker_id != action.tracker_id
            ):
                message = (
                    f"ActionId '{action_id}' is OrderId '{shown(action.order_id)}' of tracker "
                    f"{action.tracker_id}, not the OrderId and ActionTrackerId of this row"
                )
                return RowError(row.line, "UNKNOWN_ACTION", "ActionId", message)
            return action
        found = by_order.get((cast(int, tracker_id), cast(str, order_id)))
        if found is None:
            message = (
                f"OrderId '{shown(cast(str, order_id))}' with ActionTrackerId '{tracker_id}' "
                "is not an action of this account"
            )
            return RowError(row.line, "UNKNOWN_ACTION", "OrderId", message)
        return found

    def _apply(
        self, row: ValidRow, action: _Action, history: list[dict[str, object]]
    ) -> RowError | None:
        values, now = row.values, self._ctx.now
        if action.status == "LOCKED" or action.locks_at <= now:
            if action.status == "PENDING":
                action.status, action.changed = "LOCKED", True
            since = f" since {action.locks_at:%Y-%m-%d %H:%M} UTC" if action.locks_at <= now else ""
            message = (
                f"action {action.id} (OrderId '{shown(action.order_id)}') is locked{since}; "
                "locked actions cannot be modified"
            )
            return RowError(row.line, "ACTION_LOCKED", None, message)
        if action.modification_count >= MAX_MODIFICATIONS:
            message = (
                f"action {action.id} (OrderId '{shown(action.order_id)}') already has "
                f"{action.modification_count} modifications, the most allowed"
            )
            return RowError(row.line, "TOO_MANY_MODIFICATIONS", None, message)
        currency = values["CurrencyCode"]
        if currency is not None and currency != action.currency:
            message = (
                f"CurrencyCode '{currency}' is not the currency of action {action.id} "
                f"({action.currency})"
            )
            return RowError(row.line, "CURRENCY_MISMATCH", "CurrencyCode", message)
        reason = cast(str, values["Reason"])
        if reason == "RESET":
            amount, status = action.original_amount, "PENDING"
        else:
            amount = cast(Decimal, values["Amount"])
            if amount == 0 and action.amount != 0:
                status = "REVERSED"
            elif amount != 0:
                status = "PENDING"  # a new amount brings a reversed action back
            else:
                status = action.status  # 0 on an amount already 0: a modification
        customer_status = cast("str | None", values["CustomerStatus"])
        if customer_status is not None and status == "REVERSED" and action.status != "REVERSED":
            message = (
                f"CustomerStatus '{customer_status}' cannot be set on a reversal "
                f"(Amount 0 reverses action {action.id})"
            )
            return RowError(row.line, "NOT_ALLOWED_ON_REVERSAL", "CustomerStatus", message)
        history.append(
            {
                "action_id": action.id,
                "file_id": self._ctx.file_id,
                "actor": self._ctx.actor,
                "at": now,
                "reason": reason,
                "old_amount": action.amount,
                "new_amount": amount,
                "old_status": action.status,
                "new_status": status,
            }
        )
        campaign = self._ledger.campaign(action.campaign_id)
        rate = campaign.rate_for(action.partner_id) if campaign is not None else Decimal(0)
        action.amount, action.status, action.payout = amount, status, payout_of(amount, rate)
        if customer_status is not None:
            action.customer_status = customer_status
        action.modification_count += 1
        action.changed = True
        return None

    def _write(self, actions: Iterable[_Action], history: list[dict[str, object]]) -> None:
        now = self._ctx.now
        changes = [
            {
                "id": a.id,
                "amount": a.amount,
                "payout": a.payout,
                "status": a.status,
                "customer_status": a.customer_status,
                "modification_count": a.modification_count,
                "modified_at": now,
            }
            for a in actions
            if a.changed
        ]
        if changes:
            self._session.execute(update(Action), changes)
        if history:
            self._session.execute(insert(table_of(ActionModification)), history)
            self.count += len(history)
