"""Which remote files a pull takes: the filter a listing streams through.

Names starting with "." (uploads in flight, by convention) and Dropyard's own
receipt_/result_ names are passed over in silence; a name that matches the pattern but
breaks the upload name rules (`../../app.py`) is skipped and said; what was taken before
is looked up in `remote_taken` a batch at a time. Only candidates stay in memory, so a
listing of 100,000 names costs what its matches cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from sqlalchemy import select

from dropyard.db.engine import SessionFactory
from dropyard.errors import Invalid
from dropyard.files import names
from dropyard.remote.base import RemoteEntry
from dropyard.remote.models import RemoteTaken

TAKEN_BATCH = 500  # names looked up in `remote_taken` per query
SHOWN = 5  # reasons a run spells out; the rest are counted

TakenLookup = Callable[[Sequence[RemoteEntry]], set[tuple[str, int, int]]]


def takes(name: str, pattern: str) -> bool:
    """Whether a pull would take a file of this name (pattern and name rules)."""
    if _quiet(name) or not fnmatchcase(name, pattern):
        return False
    try:
        names.check_upload_name(name)
    except Invalid:
        return False
    return True


@dataclass
class Selection:
    """What a first listing leaves: the candidates (at most the cap), and what it skipped."""

    candidates: list[RemoteEntry]
    skipped: list[str]
    skipped_count: int
    more: int  # matching names past the cap, left for the next run


def select_candidates(
    entries: Iterable[RemoteEntry],
    *,
    pattern: str,
    cap: int,
    taken: TakenLookup,
    batch: int = TAKEN_BATCH,
) -> Selection:
    """Stream `entries` through the filter, keeping only candidates in memory.

    Names starting with "." (the partner's uploads in flight, by convention) and
    Dropyard's own receipt_/result_ names are passed over in silence; a name that matches
    the pattern but breaks the upload name rules (`../../app.py`) is skipped and said."""
    selection = Selection([], [], 0, 0)
    pending: list[RemoteEntry] = []

    def flush() -> None:
        if not pending:
            return
        seen = taken(pending)
        for entry in pending:
            if (entry.name, entry.size, entry.mtime) in seen:
                continue
            if len(selection.candidates) < cap:
                selection.candidates.append(entry)
            else:
                selection.more += 1
        pending.clear()

    for entry in entries:
        name = entry.name
        if _quiet(name):
            continue
        if not fnmatchcase(name, pattern):
            continue
        try:
            names.check_upload_name(name)
        except Invalid as exc:
            selection.skipped_count += 1
            if len(selection.skipped) < SHOWN:
                selection.skipped.append(exc.message)
            continue
        if len(selection.candidates) >= cap:
            # Past the cap nothing is looked up: the next run sees these again.
            selection.more += 1
            continue
        pending.append(entry)
        if len(pending) >= batch:
            flush()
    flush()
    return selection


def _quiet(name: str) -> bool:
    """Names passed over without a word: hidden ones (uploads in flight, by convention)
    and Dropyard's own receipts and results. A "hidden" name that is really a path
    (`../../app.py`) is not quiet: it is said."""
    hidden = name.startswith(".") and "/" not in name and "\\" not in name
    return hidden or names.is_reserved(name)


def unchanged(
    candidates: Sequence[RemoteEntry], second: Iterable[RemoteEntry]
) -> tuple[list[RemoteEntry], list[str]]:
    """The candidates a second listing shows with the same size and mtime, and the names
    of those that changed or went away (taken once they hold still)."""
    wanted = {entry.name: entry for entry in candidates}
    stable: list[RemoteEntry] = []
    changed: list[str] = []
    for entry in second:
        first = wanted.pop(entry.name, None)
        if first is None:
            continue
        if (entry.size, entry.mtime) == (first.size, first.mtime):
            stable.append(first)
        else:
            changed.append(entry.name)
    changed.extend(wanted)
    return stable, changed


def taken_lookup(sessions: SessionFactory, connection_id: int) -> TakenLookup:
    """One query per batch: which of these (name, size, mtime) were taken before."""

    def lookup(batch: Sequence[RemoteEntry]) -> set[tuple[str, int, int]]:
        wanted = {entry.name for entry in batch}
        with sessions() as session:
            rows = session.execute(
                select(RemoteTaken.name, RemoteTaken.size, RemoteTaken.mtime).where(
                    RemoteTaken.connection_id == connection_id,
                    RemoteTaken.name.in_(wanted),
                )
            )
            return {(name, size, mtime) for name, size, mtime in rows}

    return lookup
