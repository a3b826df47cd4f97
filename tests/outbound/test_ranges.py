"""Ranges: which [start, end) a run covers, in the connection's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dropyard.errors import Invalid
from dropyard.outbound.ranges import (
    backfill,
    local_to_utc,
    months_between,
    offset_changes,
    window_for,
)
from tests.outbound.conftest import utc

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
AT = datetime(2026, 3, 10, 1, 30, tzinfo=UTC)  # 02:30 in Paris, 21:30 the day before in NY


def test_fixed_ranges_in_utc() -> None:
    tz = ZoneInfo("UTC")
    yesterday = window_for("yesterday", at=AT, tz=tz)
    assert (yesterday.start, yesterday.end) == (utc(2026, 3, 9), utc(2026, 3, 10))
    week = window_for("last_7_days", at=AT, tz=tz)
    assert (week.start, week.end) == (utc(2026, 3, 3), utc(2026, 3, 10))
    mtd = window_for("month_to_date", at=AT, tz=tz)
    assert (mtd.start, mtd.end) == (utc(2026, 3, 1), AT)
    previous = window_for("previous_month", at=AT, tz=tz)
    assert (previous.start, previous.end) == (utc(2026, 2, 1), utc(2026, 3, 1))
    january = window_for("previous_month", at=utc(2026, 1, 15), tz=tz)
    assert (january.start, january.end) == (utc(2025, 12, 1), utc(2026, 1, 1))
    assert not yesterday.delta


def test_local_days_are_the_connection_zone() -> None:
    # At 01:30 UTC on the 10th it is already the 10th in Paris, still the 9th in New York.
    paris = window_for("yesterday", at=AT, tz=PARIS)
    assert (paris.start, paris.end) == (utc(2026, 3, 8, 23), utc(2026, 3, 9, 23))
    ny = window_for("yesterday", at=AT, tz=NEW_YORK)
    assert (ny.start, ny.end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))  # 8 March: 23 h
    assert ny.end - ny.start == timedelta(hours=23)
    mtd = window_for("month_to_date", at=AT, tz=NEW_YORK)
    assert mtd.start == utc(2026, 3, 1, 5)


def test_dst_days_are_23_and_25_hours_long() -> None:
    spring = window_for("yesterday", at=utc(2026, 3, 30, 6), tz=PARIS)
    assert (spring.start, spring.end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    autumn = window_for("yesterday", at=utc(2026, 10, 26, 6), tz=PARIS)
    assert (autumn.start, autumn.end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert autumn.end - autumn.start == timedelta(hours=25)
    week = window_for("last_7_days", at=utc(2026, 3, 30, 6), tz=PARIS)
    assert week.end - week.start == timedelta(days=7, hours=-1)


def test_since_last_run_starts_where_the_last_file_ended() -> None:
    first = window_for("since_last_run", at=AT, tz=PARIS, created_at=utc(2026, 3, 1, 12))
    assert (first.start, first.end, first.delta) == (utc(2026, 3, 1, 12), AT, True)
    later = window_for(
        "since_last_run", at=AT, tz=PARIS, last_end=utc(2026, 3, 9), created_at=utc(2026, 1, 1)
    )
    assert (later.start, later.end) == (utc(2026, 3, 9), AT)
    # A run time before the last end (a late re-run) covers nothing rather than going back.
    assert window_for("since_last_run", at=AT, tz=PARIS, last_end=AT + timedelta(hours=1)).empty


def test_backfill_takes_local_days_or_instants() -> None:
    days = backfill(date(2026, 3, 1), date(2026, 3, 31), tz=PARIS)
    assert (days.start, days.end) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))
    instants = backfill(utc(2026, 3, 1), utc(2026, 3, 2, 12), tz=PARIS)
    assert (instants.start, instants.end) == (utc(2026, 3, 1), utc(2026, 3, 2, 12))
    naive = backfill(datetime(2026, 3, 1), datetime(2026, 3, 2), tz=PARIS)
    assert naive.start == utc(2026, 2, 28, 23)
    with pytest.raises(Invalid, match="before"):
        backfill(date(2026, 3, 2), date(2026, 3, 1), tz=PARIS)


def test_unknown_range_and_naive_run_time_are_refused() -> None:
    with pytest.raises(Invalid, match="range 'fortnight'"):
        window_for("fortnight", at=AT, tz=PARIS)
    with pytest.raises(Invalid, match="time zone"):
        window_for("yesterday", at=datetime(2026, 3, 10), tz=PARIS)


def test_wall_clock_times_in_gaps_and_folds() -> None:
    # 02:30 does not exist on 29 March in Paris: it is the moment the clock jumps.
    assert local_to_utc(datetime(2026, 3, 29, 2, 30), PARIS) == utc(2026, 3, 29, 1)
    # 02:30 happens twice on 25 October: the first one.
    assert local_to_utc(datetime(2026, 10, 25, 2, 30), PARIS) == utc(2026, 10, 25, 0, 30)
    assert local_to_utc(datetime(2026, 7, 1, 12), PARIS) == utc(2026, 7, 1, 10)


def test_offsets_and_months_within_a_window() -> None:
    changes = offset_changes(utc(2026, 3, 1), utc(2026, 4, 1), PARIS)
    assert changes == [(utc(2026, 3, 1), 3600), (utc(2026, 3, 29, 1), 7200)]
    assert offset_changes(utc(2026, 5, 1), utc(2026, 5, 2), PARIS) == [(utc(2026, 5, 1), 7200)]
    assert months_between(utc(2026, 1, 31, 23), utc(2026, 2, 28, 23), PARIS) == [date(2026, 2, 1)]
    assert months_between(utc(2025, 12, 15), utc(2026, 2, 2), ZoneInfo("UTC")) == [
        date(2025, 12, 1),
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
