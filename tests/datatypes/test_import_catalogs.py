"""Product catalogs through the real pipeline: each accepted file replaces the catalog
whole; a file with too many bad rows leaves the previous one in place."""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal

from openpyxl import Workbook
from sqlalchemy import select

from dropyard.app import Dropyard
from dropyard.ledger.models import Catalog, CatalogItem
from tests.datatypes.test_import_world import World, csv_bytes, make_world

# The common shopping-feed layout, with the optional columns it usually carries.
FEED = (
    "id",
    "title",
    "description",
    "link",
    "image_link",
    "price",
    "sale_price",
    "availability",
    "brand",
    "gtin",
    "condition",
    "google_product_category",
)


def item(item_id: str, price: str = "59.90 USD", **given: str) -> list[str]:
    row = {
        "id": item_id,
        "title": f"Runner {item_id}",
        "description": "Light, with a grippy sole",
        "link": f"https://shop.example/p/{item_id}",
        "image_link": f"https://cdn.shop.example/{item_id}.jpg",
        "price": price,
        "sale_price": "",
        "availability": "in stock",
        "brand": "Acme",
        "gtin": "",
        "condition": "new",
        "google_product_category": "187",
        **given,
    }
    return [row[c] for c in FEED]


def catalog(app: Dropyard, world: World) -> tuple[Catalog | None, list[tuple[object, ...]]]:
    connection_id = world.connection("product_catalogs")
    with app.sessions() as session:
        current = session.get(Catalog, connection_id)
        items = session.execute(
            select(
                CatalogItem.generation,
                CatalogItem.item_id,
                CatalogItem.price,
                CatalogItem.sale_price,
                CatalogItem.availability,
            )
            .where(CatalogItem.connection_id == connection_id)
            .order_by(CatalogItem.item_id)
        )
        return current, [tuple(i) for i in items]


def feed(rows: Sequence[Sequence[str]], *, delimiter: str = "\t") -> bytes:
    return csv_bytes(FEED, rows, delimiter=delimiter)


def test_each_catalog_replaces_the_previous_one_whole(app: Dropyard) -> None:
    world = make_world(app)
    first = world.run(
        "product_catalogs",
        feed([item("A"), item("B", sale_price="49.90 usd", gtin="4006381333931"), item("C")]),
        name="feed.tsv",
    )
    assert first.state == "processed", first.errors
    current, items = catalog(app, world)
    assert current is not None and (current.generation, current.item_count) == (1, 3)
    assert items == [
        (1, "A", Decimal("59.90"), None, "in_stock"),
        (1, "B", Decimal("59.90"), Decimal("49.90"), "in_stock"),
        (1, "C", Decimal("59.90"), None, "in_stock"),
    ]

    # The same layout as CSV, with spaces for underscores in two column names.
    header = ",".join(c.replace("_", " ") if c in ("image_link", "sale_price") else c for c in FEED)
    second = feed([item("B", "45.00 USD"), item("D", availability="preorder")], delimiter=",")
    second = header.encode() + second[second.index(b"\n") :]
    outcome = world.run("product_catalogs", second, name="feed.csv")

    assert outcome.state == "processed", outcome.errors
    current, items = catalog(app, world)
    assert current is not None
    assert (current.generation, current.item_count, current.file_id) == (2, 2, outcome.file_id)
    assert items == [
        (2, "B", Decimal("45.00"), None, "in_stock"),
        (2, "D", Decimal("59.90"), None, "preorder"),
    ]
    with app.sessions() as session:
        attributes = session.scalar(
            select(CatalogItem.attributes).where(CatalogItem.item_id == "D")
        )
    assert attributes == {
        "description": "Light, with a grippy sole",
        "brand": "Acme",
        "condition": "new",
        "google_product_category": "187",
    }


def test_a_catalog_with_sixty_percent_bad_rows_fails_and_the_old_one_stays(app: Dropyard) -> None:
    world = make_world(app)
    world.run("product_catalogs", feed([item("A"), item("B")]))
    rows = [item(f"G{n}") for n in range(4)] + [
        item("X1", "12.99"),  # no currency
        item("X2", availability="sold out"),
        item("X3", gtin="4006381333932"),
        item("X4", sale_price="70.00 USD"),  # more than the price
        item("X5", link="shop.example/p/X5"),
        item("G0"),
    ]
    outcome = world.run("product_catalogs", feed(rows))

    assert outcome.state == "failed"
    assert outcome.summary["status"] == "FAILED"
    (file_error,) = outcome.summary["fileErrors"]
    assert file_error["errorType"] == "TOO_MANY_ERRORS"
    assert "6 of 10 rows were rejected" in file_error["message"]
    assert "previous catalog (2 items) stays" in file_error["message"]
    # The partner still learns what was wrong with each row.
    assert outcome.codes() == [
        (6, "INVALID_NUMBER"),
        (7, "INVALID_ENUM"),
        (8, "INVALID_GTIN"),
        (9, "INVALID_NUMBER"),
        (10, "INVALID_URL"),
        (11, "DUPLICATE_ID"),
    ]
    assert "sale_price '70.00 USD' is more than price '59.90 USD'" in outcome.message(9)
    current, items = catalog(app, world)
    assert current is not None and (current.generation, current.item_count) == (1, 2)
    assert [i[1] for i in items] == ["A", "B"]


def test_half_bad_is_still_a_catalog(app: Dropyard) -> None:
    world = make_world(app)
    rows = [item("A"), item("B"), item("C", "free"), item("A")]
    outcome = world.run("product_catalogs", feed(rows))

    assert outcome.state == "partial"
    assert outcome.codes() == [(4, "INVALID_NUMBER"), (5, "DUPLICATE_ID")]
    current, items = catalog(app, world)
    assert current is not None and current.item_count == 2
    assert [i[1] for i in items] == ["A", "B"]


def test_an_xlsx_catalog(app: Dropyard) -> None:
    world = make_world(app)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(FEED))
    sheet.append(item("A"))
    sheet.append(item("B", availability="out_of_stock", gtin="012345678905"))
    data = io.BytesIO()
    book.save(data)
    outcome = world.run("product_catalogs", data.getvalue(), name="feed.xlsx")

    assert outcome.state == "processed", outcome.errors
    _, items = catalog(app, world)
    assert [(i[1], i[4]) for i in items] == [("A", "in_stock"), ("B", "out_of_stock")]


def test_an_empty_catalog_does_not_wipe_the_current_one(app: Dropyard) -> None:
    world = make_world(app)
    world.run("product_catalogs", feed([item("A")]))
    outcome = world.run("product_catalogs", feed([]))

    assert outcome.state == "failed"
    assert [e["errorType"] for e in outcome.summary["fileErrors"]] == ["EMPTY_FILE"]
    _, items = catalog(app, world)
    assert [i[1] for i in items] == ["A"]
