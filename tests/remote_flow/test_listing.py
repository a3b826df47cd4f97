"""Listings of 100,000 names: streamed through the filter, only candidates kept, taken
rows looked up a batch at a time, at most a run's worth taken."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from dropyard.remote.base import RemoteEntry
from dropyard.remote.models import RemoteTaken
from dropyard.remote.selection import select_candidates, taken_lookup
from tests.remote.sshd import Sshd, mounted_tmpfs
from tests.remote_flow.conftest import Flow, fresh

COUNT = 100_000


def listing(count: int = COUNT) -> Iterator[RemoteEntry]:
    """What a server lists, one entry at a time: mostly other files, a csv every 1000."""
    for n in range(count):
        if n == COUNT // 2:
            yield RemoteEntry("../../app.csv", 10, 1_700_000_000)
        name = f"feed-{n:06d}.csv" if n % 1000 == 0 else f"other-{n:06d}.dat"
        yield RemoteEntry(name, n, 1_700_000_000 + n)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_filter_keeps_only_candidates_and_looks_up_taken_rows_in_batches(
    flow: Flow,
) -> None:
    connection_id = flow.placeholder_pull()
    with flow.app.sessions() as session, session.begin():  # two were taken before
        session.add(
            RemoteTaken(
                connection_id=connection_id, name="feed-000000.csv", size=0, mtime=1_700_000_000
            )
        )
        session.add(
            RemoteTaken(
                connection_id=connection_id, name="feed-001000.csv", size=1000, mtime=1_700_001_000
            )
        )
    queries: list[str] = []
    engine = flow.app.engine

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "remote_taken" in statement:
            queries.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    tracemalloc.start()
    try:
        selection = select_candidates(
            listing(),
            pattern="*.csv",
            cap=500,
            taken=taken_lookup(flow.app.sessions, connection_id),
            batch=50,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        event.remove(engine, "before_cursor_execute", count)

    assert len(selection.candidates) == 98  # 100 csv files, 2 taken before
    assert selection.candidates[0].name == "feed-002000.csv"
    assert selection.skipped == ["file name '../../app.csv' may not contain '/' or '\\'"]
    assert len(queries) == 2  # 100 matching names, 50 a query
    # The whole listing as a list would take some 15 MB; the filter holds candidates only.
    assert peak < 2 * 1024 * 1024, peak


def test_past_the_cap_the_rest_waits_for_the_next_run(flow: Flow) -> None:
    connection_id = flow.placeholder_pull()

    selection = select_candidates(
        listing(20_000), pattern="*", cap=500, taken=taken_lookup(flow.app.sessions, connection_id)
    )

    assert len(selection.candidates) == 500
    assert selection.more == 20_000 - 500  # every other name matches "*" too; not looked up


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_pull_from_a_folder_of_100000_files_takes_the_few_that_match(
    flow: Flow, sshd: Sshd
) -> None:
    folder, local = fresh(sshd, "many")
    with mounted_tmpfs(local, size="256m", uid=sshd.user.uid, gid=sshd.user.gid):
        for n in range(COUNT):
            os.close(os.open(local / f"other-{n:06d}.dat", os.O_CREAT | os.O_WRONLY, 0o644))
        for name in ("a.csv", "b.csv", "c.csv"):
            (local / name).write_bytes(flow.csv(name))
        connection_id = flow.sftp_pull(sshd, folder)

        result = flow.service(max_files=2).pull(connection_id)

    assert len(result.taken) == 2
    assert set(result.taken) < {"a.csv", "b.csv", "c.csv"}
    assert "1 more waiting for the next run" in result.reason
