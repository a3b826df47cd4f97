"""The outbound service: files in the hosted folder, their names, states and history."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pytest

from dropyard.accounts.actors import operator
from dropyard.errors import Invalid
from dropyard.files.models import ScheduledRun
from dropyard.jobs.scheduler import Scheduler
from tests.outbound.conftest import Clock, World, utc

OP = operator("tests")
AT = datetime(2026, 3, 10, 2, 0, 7, tzinfo=UTC)
HEADER = (
    "Date,CampaignId,MediaPartnerId,Clicks,Actions,ReversedActions,SaleAmount,Payout,CurrencyCode"
)


def _report(**details: Any) -> dict[str, Any]:
    return {"report": "performance_by_day", "range": "yesterday", **details}


def _folder(world: World, connection: int) -> list[str]:
    return sorted(info.key.rsplit("/", 1)[-1] for info in world.app.files.list_folder(connection))


def test_a_hosted_file_is_available_in_the_folder_with_its_history(world: World) -> None:
    world.action(utc(2026, 3, 9, 12), "10.00")
    connection = world.connection(_report(), name="Daily Perf")
    result = world.service().run(connection, at=AT)
    assert result.file is not None
    view = result.file
    assert view.name == "daily_perf_reports_20260310020007.csv"
    assert (view.direction, view.source, view.state) == ("outbound", "generated", "available")
    assert _folder(world, connection) == [view.name]
    data = world.read(connection, view.name)
    assert view.size == len(data)
    assert data.decode().startswith(HEADER + "\r\n")
    assert result.expires_at is not None
    assert result.expires_at - view.created_at == timedelta(days=30)
    _, events = world.app.files.get(OP, view.id)
    assert [e.state for e in events] == ["generated", "available"]
    assert "1 rows for yesterday 2026-03-09 00:00" in events[0].reason
    # The same run again makes no second file.
    again = world.service().run(connection, at=AT, run_id=result.run_id)
    assert again.file is not None
    assert again.file.id == view.id
    assert _folder(world, connection) == [view.name]


@pytest.mark.parametrize(
    ("details", "suffix"),
    [
        ({"format": "tsv"}, ".tsv"),
        ({"format": "pipe"}, ".txt"),
        ({"format": "csv", "compression": "gzip"}, ".csv.gz"),
        ({"format": "pipe", "compression": "gzip"}, ".txt.gz"),
        ({"format": "xlsx"}, ".xlsx"),
    ],
)
def test_each_format(world: World, details: dict[str, Any], suffix: str) -> None:
    world.action(utc(2026, 3, 9, 12), "10.00")
    connection = world.connection(_report(**details))
    result = world.service().run(connection, at=AT)
    assert result.file is not None
    assert result.file.name.endswith(suffix)
    name = result.file.name
    if details["format"] == "xlsx":
        path = world.tmp / "read.xlsx"
        path.write_bytes(world.read(connection, name))
        sheet = openpyxl.load_workbook(path)["performance_by_day"]
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        assert rows == [HEADER.split(","), ["2026-03-09", 1001, 7001, 0, 1, 0, 10.0, 1.0, "USD"]]
        return
    data = world.read(connection, name)
    if suffix.endswith(".gz"):
        data = gzip.decompress(data)
    separator = {"tsv": "\t", "pipe": "|", "csv": ","}[details["format"]]
    assert data.decode().split("\r\n") == [
        HEADER.replace(",", separator),
        separator.join(["2026-03-09", "1001", "7001", "0", "1", "0", "10.00", "1.00", "USD"]),
        "",
    ]


def test_an_empty_range_still_makes_a_header_only_file(world: World) -> None:
    connection = world.connection(_report())
    result = world.service().run(connection, at=AT)
    assert result.file is not None
    assert result.rows == 0
    assert world.read(connection, result.file.name) == (HEADER + "\r\n").encode()


def test_no_file_when_empty_files_are_not_sent(world: World) -> None:
    connection = world.connection(_report(send_empty=False))
    scheduler = Scheduler(world.app.sessions)
    [(_, due, run_id)] = scheduler.tick(AT)
    result = world.service().run(connection, at=due, run_id=run_id)
    assert result.file is None
    assert result.rows == 0
    assert "has no rows" in result.reason
    assert _folder(world, connection) == []
    assert world.app.files.list_files(OP, connection_id=connection) == []
    with world.app.sessions() as s:
        run = s.query(ScheduledRun).filter_by(run_id=run_id).one()
    assert (run.state, run.reason) == ("empty", result.reason)
    assert run.finished_at is not None


def test_a_scheduled_run_records_its_file(world: World) -> None:
    connection = world.connection(_report())
    [(_, due, run_id)] = Scheduler(world.app.sessions).tick(AT)
    result = world.service().run(connection, at=due, run_id=run_id)
    assert result.file is not None
    assert result.file.name == f"{_slug_of(world, connection)}_reports_20260310020000.csv"
    with world.app.sessions() as s:
        run = s.query(ScheduledRun).filter_by(run_id=run_id).one()
    assert run.state == "done"
    assert result.file.name in run.reason


def _slug_of(world: World, connection: int) -> str:
    return (
        world.app.connections.get(OP, connection).name.lower().replace(" ", "_").replace("-", "-")
    )


def test_a_custom_name_template(world: World) -> None:
    connection = world.connection(
        _report(
            name_template="perf-{account}-{yyyy}{mm}{dd}T{HH}{MM}-{run_id}.{ext}",
            timezone="America/New_York",
            compression="gzip",
        )
    )
    result = world.service().run(connection, at=AT, run_id="run42")
    assert result.file is not None
    assert result.file.name == "perf-acme-20260309T2200-run42.csv.gz"


def test_a_file_of_the_same_name_replaces_the_older_one(world: World) -> None:
    connection = world.connection(_report(name_template="{connection}.{ext}"))
    clock = Clock(AT)
    service = world.service(clock)
    first = service.run(connection)
    clock.now = AT + timedelta(days=1)
    second = service.run(connection)
    assert first.file is not None
    assert second.file is not None
    assert first.file.name == second.file.name
    assert _folder(world, connection) == [first.file.name]
    older, events = world.app.files.get(OP, first.file.id)
    assert older.state == "expired"
    assert "replaced" in events[-1].reason
    # The older file's retention is over; the newer one stays until its own ends.
    assert service.expire(AT + timedelta(days=30, hours=1)) == 0
    assert _folder(world, connection) == [first.file.name]
    assert service.expire(AT + timedelta(days=31)) == 1
    assert _folder(world, connection) == []


def test_retention_expires_files_from_the_folder(world: World) -> None:
    clock = Clock(AT)
    connection = world.connection(_report(retention_days=7))
    service = world.service(clock)
    made = service.run(connection)
    assert made.file is not None
    assert made.expires_at == AT + timedelta(days=7)
    assert service.expire(AT + timedelta(days=6)) == 0
    assert service.expire(AT + timedelta(days=7)) == 1
    assert _folder(world, connection) == []
    view, events = world.app.files.get(OP, made.file.id)
    assert view.state == "expired"
    assert view.finished_at is not None
    assert [e.state for e in events] == ["generated", "available", "expired"]
    assert "after 7 days" in events[-1].reason
    assert service.expire(AT + timedelta(days=9)) == 0


def test_downloads_are_recorded(world: World) -> None:
    connection = world.connection(_report())
    service = world.service(Clock(AT))
    made = service.run(connection)
    assert made.file is not None
    assert service.mark_downloaded(connection, made.file.name)
    assert not service.mark_downloaded(connection, made.file.name)
    assert not service.mark_downloaded(connection, "unknown.csv")
    view, events = world.app.files.get(OP, made.file.id)
    assert view.state == "downloaded"
    assert events[-1].reason == "downloaded by the partner"
    # A downloaded file still leaves the folder when its retention runs out.
    assert service.expire(AT + timedelta(days=31)) == 1
    assert _folder(world, connection) == []


def test_the_partner_deleting_a_file_expires_it(world: World) -> None:
    connection = world.connection(_report())
    service = world.service()
    made = service.run(connection, at=AT)
    assert made.file is not None
    world.app.files.delete_folder_file(connection, made.file.name)
    assert service.removed_by_partner(connection, made.file.name)
    view, events = world.app.files.get(OP, made.file.id)
    assert view.state == "expired"
    assert "deleted" in events[-1].reason


def test_a_deliver_connection_leaves_the_file_generated(world: World) -> None:
    connection = world.connection(
        _report(host="files.partner.example", folder="/in"), methodology="deliver"
    )
    made = world.service().run(connection, at=AT)
    assert made.file is not None
    assert made.file.state == "generated"
    assert _folder(world, connection) == []
    with world.app.files.open_stored(made.file.id) as handle:
        assert handle.read() == (HEADER + "\r\n").encode()
    assert made.expires_at is None


def test_bad_requests(world: World) -> None:
    connection = world.connection(_report())
    service = world.service()
    with pytest.raises(Invalid, match="both"):
        service.run(connection, range_from=utc(2026, 3, 1))
    with pytest.raises(Invalid, match="time zone"):
        service.run(connection, at=datetime(2026, 3, 1))
    inbound = world.app.connections.list_connections(OP, account=world.brand_id)
    assert all(c.direction == "outbound" for c in inbound)
