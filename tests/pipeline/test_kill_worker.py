"""SIGKILL the worker in the middle of a large import: the file is imported exactly once
after a restart — never half, never twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dropyard.files.models import File
from dropyard.ledger.models import Action
from tests.conftest import PG_ADMIN_URL, _postgres_available, _worker
from tests.support import (
    OPERATOR,
    drop_box,
    drop_postgres,
    fresh_postgres,
    start_server,
    unique,
)

ROWS = 60_000


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_killed_worker_imports_exactly_once_after_restart(tmp_path: Path, database: str) -> None:
    if database == "postgres":
        if not _postgres_available():
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not reachable; CI must run these tests")
            pytest.skip("PostgreSQL is not reachable")
        name = f"dropyard_kill_{_worker()}"
        url = fresh_postgres(PG_ADMIN_URL, name)
    else:
        url = f"sqlite:///{tmp_path / 'data' / 'dropyard.db'}"
    # The sweep that finds the file again is the scheduler role's; the killed node's
    # scheduler lease runs out as quickly as its file lease.
    env = {
        "DROPYARD_LEASE_SECONDS": "3",
        "DROPYARD_SWEEP_SECONDS": "1",
        "DROPYARD_SCHEDULER_LEASE_SECONDS": "3",
        "DROPYARD_SCHEDULER_LOOP_SECONDS": "1",
    }
    # First a server without a worker, to provision and upload.
    server = start_server(tmp_path / "data", url, roles="web", extra_env=env)
    try:
        app = server.app
        account = app.accounts.create_account(OPERATOR, name=unique("Kill"), kind="brand")
        app.ledger.create_campaign(
            OPERATOR,
            account=account.id,
            campaign_id=7001,
            name="C",
            currency="USD",
            payout_rate="0.1",
            trackers=[7101],
        )
        app.ledger.create_partner(OPERATOR, partner_id=7201, name="P")
        app.ledger.join(OPERATOR, partner_id=7201, campaign_id=7001)
        box = drop_box(app, account_id=account.id)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        lines = ["CampaignId,ActionTrackerId,EventDate,OrderId,MediaPartnerId,CurrencyCode,Amount"]
        lines += [f"7001,7101,{now},K-{n},7201,USD,{n % 500}.25" for n in range(ROWS)]
        spool = app.files.open_spool()
        spool.write(("\n".join(lines) + "\n").encode())
        view = app.files.commit(
            spool, connection_id=box.connection_id, name="big.csv", source="sftp", actor=OPERATOR
        )
    finally:
        server.stop()

    def state() -> str:
        with app.sessions() as session:
            return str(session.scalar(select(File.state).where(File.id == view.id)))

    def imported() -> int:
        with app.sessions() as session:
            return int(
                session.scalar(select(func.count(Action.id)).where(Action.campaign_id == 7001)) or 0
            )

    # A worker takes the file; kill it hard while it imports.
    worker = start_server(tmp_path / "data", url, roles="worker,scheduler", extra_env=env)
    app = worker.app
    deadline = time.monotonic() + 60
    while state() != "processing":
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.wait()
    worker.app.close()
    assert state() == "processing"
    assert imported() == 0  # the rows and the state commit together: nothing half-done

    # After a restart the lease runs out, the file is taken again and imported once.
    again = start_server(tmp_path / "data", url, roles="worker,scheduler", extra_env=env)
    app = again.app
    try:
        deadline = time.monotonic() + 120
        while state() not in ("processed", "partial", "failed", "dead"):
            assert time.monotonic() < deadline, again.log()
            time.sleep(0.2)
        assert state() == "processed"
        assert imported() == ROWS
        with app.sessions() as session:
            row = session.get(File, view.id)
            assert row is not None
            assert row.attempts == 2
            assert (row.total_rows, row.ok_rows) == (ROWS, ROWS)
    finally:
        again.stop()
        if database == "postgres":
            drop_postgres(PG_ADMIN_URL, name)
