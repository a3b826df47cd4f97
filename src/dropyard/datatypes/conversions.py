"""The `conversions` data type (formats/conversions.md): orders a brand's partners drove.

Rows are read as orders: consecutive rows with the same CampaignId, ActionTrackerId and
OrderId are the lines of one order (item rows: a Sku, ItemPrice or ItemSubtotal), whose
amount is the sum of their values. An order is imported whole or not at all: when one of
its lines fails, its other lines are rejected with it. Orders are checked and written a
chunk at a time: one query for the chunk's clicks, one bulk insert of its actions that
skips orders the ledger already has (found then, by the unique key: see
`ledger_lookup.insert_new`), one of their items.

Order-level columns (EventDate, ClickId, MediaPartnerId, Customer*, PromoCode) are taken
from the order's first line; its lines must agree on the partner and the currency.

A line the schema refuses never reaches `add`. `ConversionsImporter.rejected` takes such
lines so that their order is refused too; the pipeline does not call it yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import cast

from sqlalchemy import insert
from sqlalchemy.orm import Session

from dropyard.datatypes import values as v
from dropyard.datatypes.base import ImportContext, ImportOutcome
from dropyard.datatypes.ledger_lookup import (
    CHUNK_ROWS,
    AccountLedger,
    CampaignTerms,
    ClickRef,
    OrderKey,
    Refusal,
    attribute,
    clicks_of,
    insert_new,
    orders_of,
    payout_of,
    table_of,
)
from dropyard.datatypes.schema import Column, ParseContext, RowError, Schema, ValidRow, shown
from dropyard.datatypes.values import RowCode
from dropyard.ledger.models import Action, ActionItem

DEFAULT_WINDOW_DAYS = 88
MAX_WINDOW_DAYS = 398
# numeric(16, 2): the largest amount an action holds.
MAX_ORDER_AMOUNT = Decimal("99999999999999.99")

_window = v.date_window(max_age_days=DEFAULT_WINDOW_DAYS)


def _event_window(value: object, ctx: ParseContext) -> None:
    """At most 5 minutes ahead; not older than the account's window, which is capped at
    398 days whatever the account says."""
    if ctx.max_age_days is not None and ctx.max_age_days > MAX_WINDOW_DAYS:
        ctx = replace(ctx, max_age_days=MAX_WINDOW_DAYS)
    _window(value, ctx)


COLUMNS = (
    Column("CampaignId", True, v.integer(min_value=1)),
    Column("ActionTrackerId", True, v.integer(min_value=1)),
    Column("EventDate", True, v.date_time(), rules=(_event_window,)),
    Column("OrderId", True, v.text(), max_length=64),
    Column("ClickId", "group", v.text(), max_length=128),
    Column("MediaPartnerId", "group", v.integer(min_value=1)),
    Column("CustomerId", False, v.text(), max_length=64),
    Column("CustomerStatus", False, v.enum(["NEW", "EXISTING"])),
    Column("CurrencyCode", True, v.currency()),
    Column("Amount", "group", v.decimal(8, 2, min_value=0)),
    Column("ItemPrice", "group", v.decimal(8, 2, min_value=0)),
    Column("ItemSubtotal", "group", v.decimal(14, 2, min_value=0)),
    Column("Category", False, v.text(), max_length=255),
    Column("Sku", False, v.text(), max_length=255),
    Column("Quantity", False, v.integer(min_value=1), default=1),
    Column("PromoCode", False, v.text(), max_length=64),
)
SCHEMA = Schema(
    columns=COLUMNS,
    one_of=[("ClickId", "MediaPartnerId")],
    exactly_one_of=[("Amount", "ItemPrice", "ItemSubtotal")],
)
SCHEMA_WITH_EXTRA = replace(SCHEMA, allow_extra=True)


class Conversions:
    """The data type the pipeline looks up for `conversions` connections."""

    name = "conversions"
    allow_xlsx = False

    def schema(self, *, allow_extra: bool) -> Schema:
        return SCHEMA_WITH_EXTRA if allow_extra else SCHEMA

    def importer(self, session: Session, ctx: ImportContext) -> ConversionsImporter:
        return ConversionsImporter(session, ctx)


def _is_item(values: Mapping[str, object]) -> bool:
    return (
        values["Sku"] is not None
        or values["ItemPrice"] is not None
        or values["ItemSubtotal"] is not None
    )


def _line_value(values: Mapping[str, object]) -> Decimal:
    price = values["ItemPrice"]
    if price is not None:
        return cast(Decimal, price) * cast(int, values["Quantity"])
    subtotal = values["ItemSubtotal"]
    return cast(Decimal, subtotal if subtotal is not None else values["Amount"])


def _key_text(key: OrderKey) -> str:
    return f"OrderId '{shown(key[2])}' of campaign {key[0]} and tracker {key[1]}"


@dataclass(slots=True)
class _Order:
    """Consecutive rows of one order: one row, or several item rows."""

    key: OrderKey
    items: bool
    rows: list[ValidRow] = field(default_factory=list)
    # A line of the order that the schema refused: its line number and code.
    spoiled: tuple[int, RowCode] | None = None


@dataclass(slots=True)
class _Failure:
    row: ValidRow
    code: RowCode
    column: str | None
    message: str


class ConversionsImporter:
    """One file's conversions, imported order by order in chunks."""

    def __init__(
        self, session: Session, ctx: ImportContext, *, chunk_rows: int = CHUNK_ROWS
    ) -> None:
        self._session = session
        self._ctx = ctx
        self._ledger = AccountLedger(session, ctx.account_id)
        self._chunk_rows = chunk_rows
        self._current: _Order | None = None
        self._pending: list[_Order] = []
        self._pending_rows = 0
        # Orders of this file that were refused: a later line of one is refused too. (Those
        # imported are found in the ledger, by their file id.)
        self._refused: set[OrderKey] = set()
        # The order of the line the schema refused last, while no other order came since.
        self._spoiler: tuple[OrderKey, int, RowCode] | None = None
        self.actions = 0
        self.items = 0

    # -- the pipeline's calls ---------------------------------------------------------

    def add(self, row: ValidRow) -> None:
        values = row.values
        key = (
            cast(int, values["CampaignId"]),
            cast(int, values["ActionTrackerId"]),
            cast(str, values["OrderId"]),
        )
        spoiled = self._spoiled_by(key)
        item = _is_item(values)
        current = self._current
        if current is not None and current.key == key:
            if current.items and item:
                current.rows.append(row)
            else:
                first = current.rows[0].line
                message = (
                    f"{_key_text(key)} is already on line {first} of this file (only item "
                    "rows, with a Sku, ItemPrice or ItemSubtotal, may repeat an OrderId)"
                )
                self._reject(row, "DUPLICATE_ORDER", "OrderId", message)
            return
        if current is not None:
            self._pending.append(current)
            self._pending_rows += len(current.rows)
            if self._pending_rows >= self._chunk_rows:
                self._flush()
        self._current = _Order(key, item, [row], spoiled)

    def rejected(self, line: int, texts: Mapping[str, str], code: RowCode) -> None:
        """A line the schema refused, with its fields as sent by column name: the order
        it belongs to (the lines next to it with its CampaignId, ActionTrackerId and
        OrderId) is refused whole. For the pipeline to call in file order, between the
        `add`s of the valid lines."""
        try:
            key = (
                int(texts.get("CampaignId", "")),
                int(texts.get("ActionTrackerId", "")),
                texts.get("OrderId", ""),
            )
        except ValueError:
            return  # the line names no order
        current = self._current
        if current is not None and current.key == key:
            current.spoiled = current.spoiled or (line, code)
            return
        self._spoiled_by(key)
        self._spoiler = (key, line, code)

    def _spoiled_by(self, key: OrderKey) -> tuple[int, RowCode] | None:
        """The refused line that spoils an order starting with `key`, if one came just
        before it. Any other refused line's order is remembered as refused."""
        spoiler, self._spoiler = self._spoiler, None
        if spoiler is None:
            return None
        if spoiler[0] == key:
            return spoiler[1], spoiler[2]
        self._refused.add(spoiler[0])
        return None

    def finish(self, *, total_rows: int, rejected_rows: int) -> ImportOutcome:
        if self._current is not None:
            self._pending.append(self._current)
            self._current = None
        self._flush()
        return ImportOutcome(notes={"actions": self.actions, "items": self.items})

    # -- a chunk of orders ------------------------------------------------------------

    def _flush(self) -> None:
        orders, self._pending, self._pending_rows = self._pending, [], 0
        if not orders:
            return
        click_ids = {
            cast(str, r.values["ClickId"])
            for o in orders
            for r in o.rows
            if r.values["ClickId"] is not None
        }
        clicks = clicks_of(self._session, self._ctx.account_id, click_ids) if click_ids else {}
        earlier: dict[OrderKey, _Order] = {}
        accepted: list[tuple[_Order, CampaignTerms, int, Decimal]] = []
        for order in orders:
            checked = self._check(order, clicks, earlier)
            earlier.setdefault(order.key, order)
            if isinstance(checked, list):
                self._refuse(order, checked)
            else:
                accepted.append((order, *checked))
        taken = self._write(accepted)
        if taken:
            self._duplicates(taken)

    def _check(
        self, order: _Order, clicks: dict[str, ClickRef], earlier: dict[OrderKey, _Order]
    ) -> tuple[CampaignTerms, int, Decimal] | list[_Failure]:
        """The order's campaign, partner and amount, or why its lines fail. (Whether the
        ledger has the order already is found when it is written.)"""
        first = order.rows[0]
        campaign_id, tracker_id, _ = order.key
        campaign = self._ledger.campaign(campaign_id)
        if campaign is None:
            message = f"CampaignId '{campaign_id}' is not a campaign of this account"
            return [_Failure(first, "UNKNOWN_CAMPAIGN", "CampaignId", message)]
        if tracker_id not in campaign.trackers:
            message = (
                f"ActionTrackerId '{tracker_id}' is not an action tracker of campaign {campaign_id}"
            )
            return [_Failure(first, "UNKNOWN_TRACKER", "ActionTrackerId", message)]
        repeat = self._repeat(order, earlier)
        if repeat is not None:
            return [repeat]
        if order.spoiled is not None:
            line, code = order.spoiled
            message = (
                f"{_key_text(order.key)} was not imported: its line {line} was rejected "
                f"({code}); an order is imported with all of its lines or not at all"
            )
            return [_Failure(row, code, None, message) for row in order.rows]
        failures: list[_Failure] = []
        partner: int | None = None
        currency = cast(str, first.values["CurrencyCode"])
        amount = Decimal(0)
        for row in order.rows:
            values = row.values
            found = attribute(
                cast("str | None", values["ClickId"]),
                cast("int | None", values["MediaPartnerId"]),
                campaign,
                clicks,
            )
            if isinstance(found, Refusal):
                failures.append(_Failure(row, *found))
                continue
            if partner is None:
                partner = found
            elif found != partner:
                message = (
                    f"MediaPartnerId '{found}' differs from partner {partner} on line "
                    f"{first.line} of the same order"
                )
                failures.append(_Failure(row, "UNKNOWN_PARTNER", "MediaPartnerId", message))
                continue
            if values["CurrencyCode"] != currency:
                message = (
                    f"CurrencyCode '{values['CurrencyCode']}' differs from '{currency}' on "
                    f"line {first.line} of the same order"
                )
                failures.append(_Failure(row, "INVALID_CURRENCY", "CurrencyCode", message))
                continue
            amount += _line_value(values)
        if failures or partner is None:
            return failures
        if amount > MAX_ORDER_AMOUNT:
            message = f"the lines of {_key_text(order.key)} add up to {amount}, more than allowed"
            return [_Failure(order.rows[-1], "INVALID_NUMBER", None, message)]
        return campaign, partner, amount

    def _repeat(self, order: _Order, earlier: dict[OrderKey, _Order]) -> _Failure | None:
        """An order met earlier in this chunk, or refused earlier in this file."""
        key = order.key
        before = earlier.get(key)
        if before is None and key not in self._refused:
            return None
        where = f"on line {before.rows[0].line}" if before is not None else "earlier"
        return self._repeated(order, where, items_before=before is None or before.items)

    def _repeated(self, order: _Order, where: str, *, items_before: bool) -> _Failure:
        first, key = order.rows[0], order.key
        if order.items and items_before:
            message = (
                f"{_key_text(key)} has item rows {where} in this file; the item rows of an "
                "order must be consecutive"
            )
            return _Failure(first, "ITEMS_NOT_CONSECUTIVE", "OrderId", message)
        message = f"{_key_text(key)} is already {where} in this file"
        return _Failure(first, "DUPLICATE_ORDER", "OrderId", message)

    def _duplicates(self, orders: Sequence[_Order]) -> None:
        """Orders whose key the ledger already held when they were written."""
        found = orders_of(self._session, {o.key for o in orders})
        for order in orders:
            ref = found.get(order.key)
            if ref is not None and ref.file_id == self._ctx.file_id:
                failure = self._repeated(order, "earlier", items_before=True)
            else:
                action = f" (action {ref.action_id})" if ref is not None else ""
                message = (
                    f"{_key_text(order.key)} already exists{action}; "
                    "send corrections as action modifications"
                )
                failure = _Failure(order.rows[0], "DUPLICATE_ORDER", "OrderId", message)
            self._refuse(order, [failure], remember=False)

    # -- outcomes ---------------------------------------------------------------------

    def _reject(self, row: ValidRow, code: RowCode, column: str | None, message: str) -> None:
        self._ctx.reject(row, RowError(row.line, code, column, message))

    def _refuse(
        self, order: _Order, failures: Sequence[_Failure], *, remember: bool = True
    ) -> None:
        """Every line of a refused order is rejected: its own error, or the first one's.
        A refused order is remembered unless the ledger has its key anyway."""
        if remember:
            self._refused.add(order.key)
        own = {f.row.line: f for f in failures}
        first = failures[0]
        for row in order.rows:
            failure = own.get(row.line)
            if failure is not None:
                self._reject(row, failure.code, failure.column, failure.message)
            else:
                message = (
                    f"{_key_text(order.key)} was not imported: line {first.row.line} failed "
                    f"({first.code}); an order is imported with all of its lines or not at all"
                )
                self._reject(row, first.code, None, message)

    def _write(
        self, accepted: Sequence[tuple[_Order, CampaignTerms, int, Decimal]]
    ) -> list[_Order]:
        """Insert the orders (and the items of item orders); return those whose key was
        taken already."""
        if not accepted:
            return []
        ctx, now = self._ctx, self._ctx.now
        actions: list[dict[str, object]] = []
        for order, campaign, partner, amount in accepted:
            values = order.rows[0].values
            event_date = cast(datetime, values["EventDate"])
            locks_at = event_date + timedelta(days=campaign.lock_days)
            actions.append(
                {
                    "account_id": ctx.account_id,
                    "campaign_id": campaign.id,
                    "tracker_id": order.key[1],
                    "partner_id": partner,
                    "order_id": order.key[2],
                    "click_id": values["ClickId"],
                    "customer_id": values["CustomerId"],
                    "customer_status": values["CustomerStatus"],
                    "promo_code": values["PromoCode"],
                    "event_date": event_date,
                    "currency": values["CurrencyCode"],
                    "amount": amount,
                    "original_amount": amount,
                    "payout": payout_of(amount, campaign.rate_for(partner)),
                    # The lock period may have passed already for an old event.
                    "status": "LOCKED" if locks_at <= now else "PENDING",
                    "locks_at": locks_at,
                    "modification_count": 0,
                    "file_id": ctx.file_id,
                    "created_at": now,
                    "modified_at": now,
                }
            )
        skipped = insert_new(
            self._session, Action, actions, unique=("campaign_id", "tracker_id", "order_id")
        )
        taken = {accepted[i][0].key for i in skipped}
        ids = {
            order.key: cast(int, action["id"])
            for (order, *_), action in zip(accepted, actions, strict=True)
            if order.key not in taken
        }
        items = [
            {
                "action_id": ids[order.key],
                "sku": row.values["Sku"],
                "category": row.values["Category"],
                "quantity": row.values["Quantity"],
                "item_price": row.values["ItemPrice"],
                "amount": _line_value(row.values),
            }
            for order, *_ in accepted
            if order.items and order.key in ids
            for row in order.rows
        ]
        if items:
            self._session.execute(insert(table_of(ActionItem)), items)
        self.actions += len(ids)
        self.items += len(items)
        return [order for order, *_ in accepted if order.key not in ids]
