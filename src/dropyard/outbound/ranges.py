"""Which rows a run covers: a range name, the run time and a time zone → [start, end) in UTC.

Days and months are the connection's local ones, so "yesterday" in Europe/Paris is a
23-hour window on the day clocks go forward. Wall-clock times that do not exist (skipped
by a DST jump) or exist twice (repeated when clocks go back) are mapped the same way
everywhere, by `local_to_utc`: the moment the clock jumps, and the first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dropyard.errors import Invalid

RANGE_NAMES = ("yesterday", "last_7_days", "month_to_date", "previous_month", "since_last_run")
BACKFILL = "backfill"
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC. A `delta` window selects rows by when they last changed
    (`Action.modified_at`), any other by when they happened (`event_date`)."""

    name: str
    start: datetime
    end: datetime
    delta: bool = False

    @property
    def empty(self) -> bool:
        return self.start >= self.end


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def local_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall-clock time in `tz` as a UTC instant. A repeated time gives its first
    occurrence; a skipped one the moment the clock jumped over it."""
    wall = wall.replace(tzinfo=None)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == wall:
        return first
    # In a gap the two folds straddle the jump: find it to the second.
    low, high = sorted((first, wall.replace(tzinfo=tz, fold=1).astimezone(UTC)))
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if _wall(middle, tz) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant a local day starts."""
    return local_to_utc(datetime.combine(day, time()), tz)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _previous_month(day: date) -> date:
    return (_month_start(day) - timedelta(days=1)).replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return (_month_start(day) + timedelta(days=32)).replace(day=1)


def window_for(
    name: str,
    *,
    at: datetime,
    tz: ZoneInfo,
    last_end: datetime | None = None,
    created_at: datetime | None = None,
) -> Window:
    """The window of a scheduled or on-demand run at `at`.

    `since_last_run` starts where the previous file of the connection ended, or at the
    connection's creation for its first file; it ends at the run time.
    """
    _aware(at, "at")
    today = local_date(at, tz)
    if name == "yesterday":
        return Window(
            name, local_midnight(today - timedelta(days=1), tz), local_midnight(today, tz)
        )
    if name == "last_7_days":
        return Window(
            name, local_midnight(today - timedelta(days=7), tz), local_midnight(today, tz)
        )
    if name == "month_to_date":
        return Window(name, local_midnight(_month_start(today), tz), at)
    if name == "previous_month":
        return Window(
            name,
            local_midnight(_previous_month(today), tz),
            local_midnight(_month_start(today), tz),
        )
    if name == "since_last_run":
        start = last_end or created_at
        if start is None:
            raise Invalid("since_last_run needs the previous file's end or a start time")
        return Window(name, min(start, at), at, delta=True)
    raise Invalid(f"range '{name}' is not one of {', '.join(RANGE_NAMES)}", field="range")


def backfill(range_from: date | datetime, range_to: date | datetime, *, tz: ZoneInfo) -> Window:
    """An explicit window for a past range. Dates are local days and `range_to` is then
    the last day included; times are instants (naive ones local) and `range_to` is the
    first instant excluded."""
    start = _bound(range_from, tz, inclusive_end=False)
    end = _bound(range_to, tz, inclusive_end=True)
    if start >= end:
        raise Invalid(
            f"range_from '{range_from}' must be before range_to '{range_to}'",
            field="range_from",
        )
    return Window(BACKFILL, start, end)


def _bound(value: date | datetime, tz: ZoneInfo, *, inclusive_end: bool) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return local_to_utc(value, tz)
        return value.astimezone(UTC)
    return local_midnight(value + timedelta(days=1) if inclusive_end else value, tz)


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None:
        raise Invalid(f"{name} '{value}' has no time zone", field=name)


def months_between(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    """The first days of the local months that [start, end) touches, in order."""
    if start >= end:
        return []
    month = _month_start(local_date(start, tz))
    last = _month_start(local_date(end - timedelta(microseconds=1), tz))
    months: list[date] = []
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def offset_changes(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[datetime, int]]:
    """The UTC offsets (in seconds) that apply within [start, end), each with the instant
    it starts applying; the first starts at `start`. Assumes at most one change a day."""

    def offset(instant: datetime) -> int:
        delta = instant.astimezone(tz).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    changes = [(start, offset(start))]
    if start >= end:
        return changes
    probes: list[datetime] = []
    probe = start + timedelta(days=1)
    while probe < end:
        probes.append(probe)
        probe += timedelta(days=1)
    probes.append(end - timedelta(microseconds=1))
    low = start
    for high in probes:
        if offset(high) != changes[-1][1]:
            lo, hi = low, high
            while hi - lo > _SECOND:
                middle = lo + (hi - lo) / 2
                if offset(middle) == changes[-1][1]:
                    lo = middle
                else:
                    hi = middle
            changes.append((hi.replace(microsecond=0), offset(hi)))
        low = high
    return changes
