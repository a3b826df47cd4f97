"""A dry run: a sample file read, validated and checked against the ledger exactly as an
import would, with nothing left behind — no file, no folder results, no ledger rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from dropyard.app import Dropyard
from dropyard.errors import Invalid
from dropyard.files.models import File, FileEvent
from dropyard.ledger.models import Action, ActionItem
from tests.datatypes.test_import_world import (
    OP,
    PARTNER_A,
    World,
    _public_key,
    conversion,
    conversions_file,
    make_world,
)
from tests.support import unique, walk_wizard

UNKNOWN = 9999


def sample(tmp_path: Path, data: bytes, name: str = "sample.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def nothing_left(world: World, connection_id: int) -> None:
    assert world.count(File) == 0
    assert world.count(FileEvent) == 0
    assert world.count(Action) == 0
    assert world.count(ActionItem) == 0
    assert list(world.app.files.list_folder(connection_id)) == []


MIXED = [
    conversion("ORD-1"),
    conversion("ORD-2", CampaignId=UNKNOWN),  # line 3: a ledger rule
    conversion("ORD-3", CurrencyCode="XXQ"),  # line 4: a value rule
    conversion("ORD-1"),  # line 5: the order of line 2 again
    conversion("ORD-4", MediaPartnerId=PARTNER_A, Amount="12.50"),
]


def test_a_sample_is_checked_and_nothing_is_kept(app: Dropyard, tmp_path: Path) -> None:
    world = make_world(app)
    connection_id = world.connection("conversions")
    path = sample(tmp_path, conversions_file(MIXED))

    checked = app.processor.dry_run(connection_id=connection_id, name="sample.csv", path=path)

    assert (checked.total_rows, checked.ok_rows, checked.error_rows) == (5, 2, 3)
    assert checked.state == "partial"
    assert checked.file_errors == ()
    assert [(e.line, e.code) for e in checked.errors] == [
        (3, "UNKNOWN_CAMPAIGN"),
        (4, "INVALID_CURRENCY"),
        (5, "DUPLICATE_ORDER"),
    ]
    assert "XXQ" in checked.errors[1].message
    assert checked.more_errors == 0
    nothing_left(world, connection_id)
    assert path.exists()  # the caller's file is the caller's to remove

    # The real import of the same bytes says the same, row for row.
    real = world.run("conversions", conversions_file(MIXED))
    assert real.state == "partial"
    assert real.codes() == [(e.line, e.code) for e in checked.errors]


def test_a_sample_meets_the_ledger_as_it_is(app: Dropyard, tmp_path: Path) -> None:
    world = make_world(app)
    connection_id = world.connection("conversions")
    data = conversions_file([conversion("ORD-1"), conversion("ORD-2")])
    world.run("conversions", data)
    files_before, actions_before = world.count(File), world.count(Action)

    checked = app.processor.dry_run(
        connection_id=connection_id, name="again.csv", path=sample(tmp_path, data)
    )

    assert checked.state == "duplicate"
    assert [code for code, _ in checked.file_errors] == ["DUPLICATE_FILE"]
    assert [(e.line, e.code) for e in checked.errors] == [
        (2, "DUPLICATE_ORDER"),
        (3, "DUPLICATE_ORDER"),
    ]
    assert (world.count(File), world.count(Action)) == (files_before, actions_before)


def test_only_the_first_errors_are_listed(app: Dropyard, tmp_path: Path) -> None:
    world = make_world(app)
    connection_id = world.connection("conversions")
    rows = [conversion(f"ORD-{n}", CurrencyCode="XXQ") for n in range(5)] + [conversion("OK")]
    checked = app.processor.dry_run(
        connection_id=connection_id,
        name="many.csv",
        path=sample(tmp_path, conversions_file(rows)),
        max_errors=2,
    )
    assert (checked.total_rows, checked.ok_rows, checked.error_rows) == (6, 1, 5)
    assert [e.line for e in checked.errors] == [2, 3]
    assert checked.more_errors == 3
    nothing_left(world, connection_id)


def test_a_file_refused_as_a_whole(app: Dropyard, tmp_path: Path) -> None:
    world = make_world(app)
    connection_id = world.connection("conversions")
    path = sample(tmp_path, b"OrderId,Amount\nORD-1,10.00\n")
    checked = app.processor.dry_run(connection_id=connection_id, name="cut.csv", path=path)
    assert checked.state == "failed"
    assert checked.file_errors and checked.file_errors[0][0] == "MISSING_COLUMNS"
    assert checked.ok_rows == 0
    nothing_left(world, connection_id)


def test_an_outbound_connection_has_no_dry_run(app: Dropyard, tmp_path: Path) -> None:
    world = make_world(app)
    outbound = walk_wizard(
        app,
        OP,
        account=world.brand_id,
        name=unique("Reports"),
        direction="outbound",
        data_type="reports",
        method="sftp",
        methodology="hosted",
        details={},
        credential={
            "new": {"kind": "hosted_public_key", "name": unique("key"), "public_key": _public_key()}
        },
    ).connection.id
    with pytest.raises(Invalid, match="outbound"):
        app.processor.dry_run(
            connection_id=outbound, name="x.csv", path=sample(tmp_path, b"a\n1\n")
        )
    assert world.count(File) == 0
