"""The `product_catalogs` data type (formats/product_catalogs.md): a brand's product feed.

Each accepted file replaces the connection's catalog whole. Its rows are written as a
new generation next to the current one; at the end the catalog's generation is flipped
and the old generation's rows deleted — all in the pipeline's transaction, so readers
see the old catalog or the new one, never a mix. When more than half of the rows are
rejected (`max_rejected_share`), the file fails with TOO_MANY_ERRORS: the pipeline rolls
the new rows back and the previous catalog stays. A file without rows fails too: an
empty feed is far more often a broken export than a wish to delist everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import cast

from sqlalchemy import delete
from sqlalchemy.orm import Session

from dropyard.datatypes import values as v
from dropyard.datatypes.base import ImportContext, ImportOutcome, RowsStandAlone
from dropyard.datatypes.ledger_lookup import RowBatch, insert_new
from dropyard.datatypes.schema import Column, ParseContext, RowError, Schema, ValidRow, shown
from dropyard.datatypes.values import BadValue, Price
from dropyard.ledger.models import Catalog, CatalogItem

# More than this share of rejected rows fails the file (formats: "more than half").
MAX_REJECTED_SHARE = 0.5

AVAILABILITY = ("in_stock", "out_of_stock", "preorder", "backorder")
CONDITIONS = ("new", "refurbished", "used")
# Kept in the item's `attributes`, by column name, when given.
ATTRIBUTES = (
    "description",
    "brand",
    "gtin",
    "mpn",
    "condition",
    "google_product_category",
    "product_type",
    "item_group_id",
)


def _sale_within_price(values: Mapping[str, object], ctx: ParseContext) -> None:
    sale, price = values["sale_price"], values["price"]
    if not isinstance(sale, Price) or not isinstance(price, Price):
        return
    if sale.currency != price.currency:
        raise BadValue(
            "INVALID_CURRENCY",
            f"sale_price '{sale.amount} {sale.currency}' is not in the currency of price "
            f"'{price.amount} {price.currency}'",
            column="sale_price",
        )
    if sale.amount > price.amount:
        raise BadValue(
            "INVALID_NUMBER",
            f"sale_price '{sale.amount} {sale.currency}' is more than price "
            f"'{price.amount} {price.currency}'",
            column="sale_price",
        )


COLUMNS = (
    Column("id", True, v.text(), max_length=50),
    Column("title", True, v.text(), max_length=150),
    Column("description", False, v.text(), max_length=5000),
    Column("link", True, v.url()),
    Column("image_link", True, v.url()),
    Column("price", True, v.price()),
    Column("sale_price", False, v.price()),
    Column("availability", True, v.enum(AVAILABILITY)),
    Column("brand", False, v.text(), max_length=70),
    Column("gtin", False, v.gtin()),
    Column("mpn", False, v.text(), max_length=70),
    Column("condition", False, v.enum(CONDITIONS)),
    Column("google_product_category", False, v.text()),
    Column("product_type", False, v.text(), max_length=750),
    Column("item_group_id", False, v.text(), max_length=50),
)
SCHEMA = Schema(columns=COLUMNS, row_rules=[_sale_within_price])
SCHEMA_WITH_EXTRA = replace(SCHEMA, allow_extra=True)


class ProductCatalogs:
    """The data type the pipeline looks up for `product_catalogs` connections."""

    name = "product_catalogs"
    allow_xlsx = True

    def __init__(self, *, max_rejected_share: float = MAX_REJECTED_SHARE) -> None:
        self.max_rejected_share = max_rejected_share

    def schema(self, *, allow_extra: bool) -> Schema:
        return SCHEMA_WITH_EXTRA if allow_extra else SCHEMA

    def importer(self, session: Session, ctx: ImportContext) -> CatalogImporter:
        return CatalogImporter(session, ctx, max_rejected_share=self.max_rejected_share)


class CatalogImporter(RowsStandAlone):
    """One catalog file: a new generation of the connection's catalog."""

    def __init__(
        self,
        session: Session,
        ctx: ImportContext,
        *,
        max_rejected_share: float = MAX_REJECTED_SHARE,
        chunk_rows: int | None = None,
    ) -> None:
        self._session = session
        self._ctx = ctx
        self._share = max_rejected_share
        self._batch = RowBatch() if chunk_rows is None else RowBatch(chunk_rows)
        # The pipeline holds the connection's row lock: no other file of this connection
        # is importing, so the next generation is ours.
        self._catalog = session.get(Catalog, ctx.connection_id)
        current = self._catalog.generation if self._catalog is not None else 0
        self.generation = current + 1
        self.items = 0
        self._rejected = 0

    def add(self, row: ValidRow) -> None:
        if self._batch.add(row):
            self._flush()

    def finish(self, *, total_rows: int, rejected_rows: int) -> ImportOutcome:
        before = self._rejected
        self._flush()
        rejected = rejected_rows + self._rejected - before
        previous = self._previous()
        if total_rows == 0:
            return ImportOutcome(
                file_error=("EMPTY_FILE", f"the catalog has no rows; {previous} stays")
            )
        if rejected > total_rows * self._share:
            share = f"{self._share:.0%}"
            message = (
                f"{rejected} of {total_rows} rows were rejected, more than {share}; "
                f"nothing was imported and {previous} stays"
            )
            return ImportOutcome(file_error=("TOO_MANY_ERRORS", message))
        self._replace()
        return ImportOutcome(notes={"items": self.items, "generation": self.generation})

    def _previous(self) -> str:
        if self._catalog is None:
            return "the catalog (empty until now)"
        return f"the previous catalog ({self._catalog.item_count} items)"

    # -- rows -------------------------------------------------------------------------

    def _flush(self) -> None:
        rows = self._batch.take()
        if not rows:
            return
        seen: dict[str, int] = {}
        accepted: list[ValidRow] = []
        for row in rows:
            item_id = cast(str, row.values["id"])
            if item_id in seen:
                self._duplicate(row, f"line {seen[item_id]}")
                continue
            seen[item_id] = row.line
            accepted.append(row)
        values = [self._values(row) for row in accepted]
        unique = ("connection_id", "generation", "item_id")
        skipped = insert_new(self._session, CatalogItem, values, unique=unique)
        for i in skipped:  # the generation is new: only this file's earlier chunks hold ids
            self._duplicate(accepted[i], "an earlier line")
        self.items += len(values) - len(skipped)

    def _duplicate(self, row: ValidRow, where: str) -> None:
        item_id = cast(str, row.values["id"])
        message = f"id '{shown(item_id)}' is already on {where} of this file"
        self._ctx.reject(row, RowError(row.line, "DUPLICATE_ID", "id", message))
        self._rejected += 1

    def _values(self, row: ValidRow) -> dict[str, object]:
        values = row.values
        price = cast(Price, values["price"])
        sale = cast("Price | None", values["sale_price"])
        return {
            "connection_id": self._ctx.connection_id,
            "generation": self.generation,
            "item_id": values["id"],
            "title": values["title"],
            "link": values["link"],
            "image_link": values["image_link"],
            "price": price.amount,
            "currency": price.currency,
            "sale_price": sale.amount if sale is not None else None,
            "availability": values["availability"],
            "attributes": {k: values[k] for k in ATTRIBUTES if values[k] is not None},
        }

    # -- the flip ---------------------------------------------------------------------

    def _replace(self) -> None:
        """Point the catalog at the new generation and drop the old one's rows."""
        ctx = self._ctx
        if self._catalog is None:
            self._session.add(
                Catalog(
                    connection_id=ctx.connection_id,
                    generation=self.generation,
                    file_id=ctx.file_id,
                    item_count=self.items,
                    updated_at=ctx.now,
                )
            )
        else:
            self._catalog.generation = self.generation
            self._catalog.file_id = ctx.file_id
            self._catalog.item_count = self.items
            self._catalog.updated_at = ctx.now
        self._session.flush()
        self._session.execute(
            delete(CatalogItem).where(
                CatalogItem.connection_id == ctx.connection_id,
                CatalogItem.generation != self.generation,
            )
        )
