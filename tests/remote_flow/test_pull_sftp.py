"""Pulling conversions from a partner's OpenSSH server: imported and answered in its
result folder, taken once, deleted when asked, complete files only, odd names skipped."""

from __future__ import annotations

import json

from sqlalchemy import select

from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.remote.models import RemoteTaken
from tests.remote.sshd import Sshd
from tests.remote_flow.conftest import Flow, fresh, put
from tests.support import OPERATOR


def test_pulled_files_are_imported_and_answered_in_the_result_folder(
    flow: Flow, sshd: Sshd
) -> None:
    folder, local = fresh(sshd, "out")
    results, results_local = fresh(sshd, "results")
    put(local, "orders-1.csv", flow.csv("ORD-1", "ORD-2"), owner=sshd)
    put(local, "orders-2.csv", flow.csv("ORD-3"), owner=sshd)
    put(local, "notes.txt", b"not a csv", owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder, result_folder=results)
    run_id = flow.scheduled_run(connection_id)

    result = flow.app.remote.pull(connection_id, run_id=run_id)

    assert result.state == "done"
    assert sorted(result.taken) == ["orders-1.csv", "orders-2.csv"]
    state, reason = flow.run_outcome(run_id)
    assert state == "done"
    assert reason.startswith("took 2 files (")
    files = flow.files(connection_id)
    assert [(f.name, f.source, f.state) for f in files] == [
        ("orders-1.csv", "sftp-pull", "received"),
        ("orders-2.csv", "sftp-pull", "received"),
    ]
    # Receipts go to the partner's result folder at once, not to a hosted folder.
    receipt = (results_local / "receipt_orders-1.csv.txt").read_text()
    assert f"traceId: {files[0].trace_id}" in receipt
    assert "size: " in receipt
    assert list(flow.app.files.list_folder(connection_id)) == []

    assert flow.process_all(connection_id) == ["processed", "processed"]
    summary = json.loads((results_local / "result_orders-1.csv_summary.json").read_bytes())
    assert summary["status"] == "COMPLETED"
    assert summary["successfulRowCount"] == 2
    assert summary["traceId"] == files[0].trace_id
    # Uploads went through temporary names: nothing else is left in the result folder.
    assert sorted(p.name for p in results_local.iterdir()) == [
        "receipt_orders-1.csv.txt",
        "receipt_orders-2.csv.txt",
        "result_orders-1.csv_summary.json",
        "result_orders-2.csv_summary.json",
    ]
    # The partner's files stay (no delete_after_pull), and are remembered.
    assert (local / "orders-1.csv").exists()
    with flow.app.sessions() as session:
        taken = session.scalars(
            select(RemoteTaken).where(RemoteTaken.connection_id == connection_id)
        ).all()
    assert sorted((t.name, t.file_id is not None, len(t.sha256 or "")) for t in taken) == [
        ("orders-1.csv", True, 64),
        ("orders-2.csv", True, 64),
    ]


def test_a_taken_file_is_not_taken_twice_but_a_new_version_is(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd)
    put(local, "daily.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder)
    assert flow.app.remote.pull(connection_id).taken == ("daily.csv",)

    again = flow.app.remote.pull(connection_id)

    assert again.state == "empty"
    assert again.reason.startswith("nothing new in sftp://127.0.0.1:")
    assert len(flow.files(connection_id)) == 1
    # The partner writes a new version under the same name: that one is new.
    put(local, "daily.csv", flow.csv("ORD-1", "ORD-2"), owner=sshd)
    assert flow.app.remote.pull(connection_id).taken == ("daily.csv",)
    assert len(flow.files(connection_id)) == 2


def test_delete_after_pull_removes_what_was_taken(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd)
    put(local, "a.csv", flow.csv("ORD-1"), owner=sshd)
    put(local, "keep.txt", b"other", owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder, delete_after_pull=True)

    result = flow.app.remote.pull(connection_id)

    assert result.taken == ("a.csv",)
    assert sorted(p.name for p in local.iterdir()) == ["keep.txt"]
    assert flow.app.remote.pull(connection_id).state == "empty"


def test_a_file_growing_between_the_listings_waits_for_the_next_run(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd)
    put(local, "done.csv", flow.csv("ORD-1"), owner=sshd)
    growing = put(local, "growing.csv", flow.csv("ORD-2"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder, stable_seconds=1)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the partner is still writing
        waits.append(seconds)
        with growing.open("ab") as handle:
            handle.write(f"{flow.campaign_id},{flow.tracker_id},x,ORD-9,1,USD,1\n".encode())

    result = flow.service(sleep=sleep).pull(connection_id)

    assert waits == [1.0]
    assert result.taken == ("done.csv",)
    assert "1 still changing (growing.csv), taken once complete" in result.reason
    later = flow.service(sleep=lambda s: None).pull(connection_id)
    assert later.taken == ("growing.csv",)
    taken = flow.files(connection_id)[-1]
    assert taken.size == growing.stat().st_size  # the whole file, as it ended


def test_names_the_upload_rules_refuse_are_skipped_and_said_never_fetched(
    flow: Flow, sshd: Sshd
) -> None:
    folder, local = fresh(sshd)
    put(local, "..\\..\\app.csv", b"x", owner=sshd)  # a path to somewhere else, Windows-style
    put(local, "bell\x07.csv", b"x", owner=sshd)
    put(local, "receipt_old.csv", b"ours", owner=sshd)
    put(local, ".in-flight.csv", b"partial", owner=sshd)
    put(local, "good.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder)

    result = flow.app.remote.pull(connection_id)

    assert result.taken == ("good.csv",)
    assert "2 skipped: " in result.reason
    assert "file name '..\\..\\app.csv' may not contain '/' or '\\'" in result.reason
    assert "file name 'bell?.csv' contains a control character" in result.reason
    assert [f.name for f in flow.files(connection_id)] == ["good.csv"]


def test_a_paused_connection_is_not_run(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd)
    put(local, "a.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder)
    flow.app.connections.pause(OPERATOR, connection_id)
    run_id = flow.scheduled_run(connection_id)

    result = flow.app.remote.pull(connection_id, run_id=run_id)

    assert result.state == "skipped"
    assert flow.run_outcome(run_id) == ("skipped", "not run: the connection is paused")
    assert flow.files(connection_id) == []


def test_a_scheduled_job_of_a_pull_connection_pulls(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd)
    put(local, "a.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder, schedule="hourly")
    with flow.app.sessions() as session:
        assert session.get(Connection, connection_id) is not None
    flow.app.jobs.huey.immediate = True  # run tasks in this thread, as a worker would
    run_id = flow.scheduled_run(connection_id)

    flow.app.jobs.enqueue_run(connection_id, run_id=run_id, due_at=utcnow())

    assert flow.run_outcome(run_id) == ("done", "took 1 file (a.csv)")
    assert [f.name for f in flow.files(connection_id)] == ["a.csv"]


def test_a_result_folder_that_refuses_writes_does_not_fail_the_import(
    flow: Flow, sshd: Sshd
) -> None:
    folder, local = fresh(sshd)
    results, results_local = fresh(sshd, "results", mode=0o555)
    put(local, "a.csv", flow.csv("ORD-1"), owner=sshd)
    connection_id = flow.sftp_pull(sshd, folder, result_folder=results)

    result = flow.app.remote.pull(connection_id)

    assert result.taken == ("a.csv",)
    (taken,) = flow.files(connection_id)
    assert flow.process_all(connection_id) == ["processed"]
    history = flow.history(taken.id)
    assert any(
        e.startswith(f"receipt not written to {results}: the server refused the write")
        for e in history
    ), history
    assert any(
        e.startswith(f"result_a.csv_summary.json not written to {results}: ") for e in history
    ), history
    assert list(results_local.iterdir()) == []
