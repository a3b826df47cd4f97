"""Delivering outbound files to a partner's SFTP folder: uploaded under a temporary name
and renamed, retried with backoff when the target refuses, failed after the last try."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from dropyard.accounts.models import AuditEvent
from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.remote.deliver import MAX_ATTEMPTS, RETRY_AFTER
from tests.remote.sshd import Sshd, mounted_tmpfs
from tests.remote_flow.conftest import Clock, Flow, file_row, fresh, generated

PINNED_ELSEWHERE = "SHA256:" + "Q" * 43


def sftp_deliver(flow: Flow, sshd: Sshd, folder: str, **more: Any) -> int:
    return flow.connection(
        method="sftp",
        methodology="deliver",
        details={
            "host": "127.0.0.1",
            "port": sshd.port,
            "folder": folder,
            "host_key_fingerprint": sshd.fingerprint,
            "report": "performance_by_day",
            **more,
        },
        username=sshd.user.name,
        password=sshd.user.password,
    )


def leftovers(local: Path) -> list[str]:
    return sorted(p.name for p in local.iterdir() if p.name.startswith("."))


def test_a_run_of_a_deliver_connection_uploads_its_file_to_the_partner(
    flow: Flow, sshd: Sshd
) -> None:
    folder, local = fresh(sshd, "inbox")
    connection_id = sftp_deliver(flow, sshd, folder)
    made = flow.app.outbound.run(connection_id)
    assert made.file is not None
    assert made.file.state == "generated"

    result = flow.app.remote.deliver(made.file.id)

    assert result.state == "delivered"
    where = f"sftp://127.0.0.1:{sshd.port}{folder}/{made.file.name}"
    assert result.reason == f"delivered to {where}"
    with flow.app.files.open_stored(made.file.id) as stored:
        assert (local / made.file.name).read_bytes() == stored.read()
    assert leftovers(local) == []
    row = file_row(flow, made.file.id)
    assert (row.state, row.last_error, row.attempts) == ("delivered", None, 1)
    assert flow.history(made.file.id)[-1] == f"delivered to {where}"
    with flow.app.sessions() as session:
        audit = session.scalar(
            select(AuditEvent).where(AuditEvent.target == f"file:{made.file.id}")
        )
    assert audit is not None
    assert audit.action == "file.deliver"
    # Delivered once: another attempt has nothing to do.
    assert flow.app.remote.deliver(made.file.id).reason == "nothing to do: the file is delivered"


def test_the_scheduled_job_makes_the_file_and_delivers_it(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd, "inbox")
    connection_id = sftp_deliver(flow, sshd, folder)
    flow.app.jobs.huey.immediate = True  # run tasks in this thread, as a worker would
    run_id = flow.scheduled_run(connection_id)

    flow.app.jobs.enqueue_run(connection_id, run_id=run_id, due_at=utcnow())

    (made,) = flow.files(connection_id)
    assert made.state == "delivered"
    assert (local / made.name).exists()


def test_a_read_only_target_is_retried_with_backoff_until_it_works(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd, "locked", mode=0o555)
    connection_id = sftp_deliver(flow, sshd, folder)
    file_id = generated(flow, connection_id, "report.csv", b"a,b\n1,2\n")
    clock = Clock()
    remote = flow.service(clock=clock)

    first = remote.deliver(file_id)

    assert first.state == "generated"
    assert first.failed
    assert first.next_try_at == clock.now + RETRY_AFTER[0]
    row = file_row(flow, file_id)
    assert row.state == "generated"
    assert row.last_error is not None
    assert "refused the write" in row.last_error
    event = flow.history(file_id)[-1]
    assert event.startswith(f"delivery failed (attempt 1 of {MAX_ATTEMPTS}): ")
    assert f"next try at {first.next_try_at:%Y-%m-%d %H:%M:%S} UTC" in event
    assert leftovers(local) == []
    assert remote.due_deliveries() == []  # not due yet
    # Too early: no attempt is made.
    early = remote.deliver(file_id)
    assert not early.failed
    assert early.reason.startswith("next try at ")
    assert file_row(flow, file_id).attempts == 1

    clock.advance(minutes=1, seconds=1)
    assert remote.due_deliveries() == [file_id]
    assert remote.deliver(file_id).attempt == 2
    local.chmod(0o755)  # the partner fixes the folder
    clock.advance(minutes=5, seconds=1)

    done = remote.deliver(file_id)

    assert done.state == "delivered"
    assert (local / "report.csv").read_bytes() == b"a,b\n1,2\n"
    assert file_row(flow, file_id).last_error is None


def test_after_the_last_attempt_the_file_is_failed(flow: Flow, sshd: Sshd) -> None:
    folder, _ = fresh(sshd, "locked", mode=0o555)
    connection_id = sftp_deliver(flow, sshd, folder)
    file_id = generated(flow, connection_id, "report.csv", b"a\n")
    clock = Clock()
    remote = flow.service(clock=clock)

    results = []
    for wait in (*RETRY_AFTER, None):
        results.append(remote.deliver(file_id))
        if wait is not None:
            clock.advance(seconds=wait.total_seconds() + 1)

    assert [r.attempt for r in results] == list(range(1, MAX_ATTEMPTS + 1))
    assert results[-1].state == "failed"
    assert results[-1].next_try_at is None
    assert file_row(flow, file_id).state == "failed"
    assert flow.history(file_id)[-1].endswith("; giving up")
    clock.advance(days=1)
    assert remote.due_deliveries() == []


def test_a_full_target_keeps_the_file_generated_with_the_reason(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd, "full")
    connection_id = sftp_deliver(flow, sshd, folder)
    file_id = generated(flow, connection_id, "big.csv", b"x" * 256 * 1024)
    with mounted_tmpfs(local, size="64k", uid=sshd.user.uid, gid=sshd.user.gid):
        result = flow.service().deliver(file_id)
        names = sorted(p.name for p in local.iterdir())

    assert result.state == "generated"
    assert "no space left on the server" in result.reason
    assert names == []  # nothing half-written, under the name or a temporary one
    assert "no space left" in (file_row(flow, file_id).last_error or "")


def test_a_host_key_other_than_the_pinned_one_fails_the_attempt_and_marks_the_connection(
    flow: Flow, sshd: Sshd
) -> None:
    folder, local = fresh(sshd, "inbox")
    connection_id = sftp_deliver(flow, sshd, folder, host_key_fingerprint=PINNED_ELSEWHERE)
    file_id = generated(flow, connection_id, "report.csv", b"a\n")

    result = flow.app.remote.deliver(file_id)

    assert result.state == "generated"
    assert f"it presented {sshd.fingerprint}, {PINNED_ELSEWHERE} is pinned" in result.reason
    with flow.app.sessions() as session:
        row = session.get(Connection, connection_id)
        assert row is not None
        assert row.presented_fingerprint == sshd.fingerprint
        assert row.remote_error is not None
    assert list(local.iterdir()) == []


def test_the_sweep_sends_what_is_due(flow: Flow, sshd: Sshd) -> None:
    folder, local = fresh(sshd, "inbox")
    connection_id = sftp_deliver(flow, sshd, folder)
    file_id = generated(flow, connection_id, "left-over.csv", b"a\n")
    flow.app.jobs.huey.immediate = True

    flow.app.jobs.sweep()

    assert file_row(flow, file_id).state == "delivered"
    assert (local / "left-over.csv").exists()
