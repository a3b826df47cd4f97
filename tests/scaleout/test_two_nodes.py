"""Dropyard scaled out (DESIGN §4): nodes A and B and two workers over one PostgreSQL, Redis
and S3 store, and what partners notice when one part fails.

The tests run in this order, on one cluster; each puts back what it broke. The S3 outage
comes last: moto keeps objects in memory, so its restart empties the bucket.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from dropyard.files import names
from tests.scaleout.clients import (
    Brand,
    actions_of,
    background_put,
    files_of,
    fingerprints,
    get,
    keyscan,
    new_brand,
    put,
    sftp,
    wait_for,
)
from tests.scaleout.cluster import Cluster
from tests.scaleout.infra import Worker

pytestmark = pytest.mark.xdist_group("scaleout")

MIB = 1024 * 1024


def _wait_summary(
    port: int, brand: Brand, name: str, cwd: Path, timeout: float = 60
) -> dict[str, Any]:
    """The result summary of `name`, downloaded over SFTP once it is there."""
    found: dict[str, dict[str, Any]] = {}

    def ready() -> bool:
        data = get(port, brand.box, names.summary_name(name), cwd)
        if data:
            found["summary"] = json.loads(data)
        return bool(data)

    wait_for(ready, f"{names.summary_name(name)} over SFTP", timeout)
    return found["summary"]


def test_uploaded_on_a_processed_by_a_worker_and_answered_on_b(
    cluster: Cluster, tmp_path: Path
) -> None:
    brand = new_brand(cluster.ops)
    (tmp_path / "orders.csv").write_bytes(brand.conversions(3))

    sent = put(cluster.a.ports["sftp"], brand.box, tmp_path / "orders.csv", "orders.csv")

    assert sent.code == 0, sent.err
    summary = _wait_summary(cluster.b.ports["sftp"], brand, "orders.csv", tmp_path)
    assert summary["status"] == "COMPLETED"
    assert (summary["totalRowCount"], summary["successfulRowCount"]) == (3, 3)
    receipt = get(cluster.b.ports["sftp"], brand.box, names.receipt_name("orders.csv"), tmp_path)
    assert receipt is not None and b"orders.csv" in receipt
    assert actions_of(cluster.ops, brand.campaign_id) == 3
    # The bytes live in the shared bucket, not on either node's disk.
    (row,) = files_of(cluster.ops, brand.box.connection_id)
    assert cluster.s3.keys(f"inbox/{brand.box.connection_id}/") == [row.storage_key]
    # A partner's known_hosts entry holds whichever node the balancer picks.
    on_a, on_b = keyscan(cluster.a.ports["sftp"]), keyscan(cluster.b.ports["sftp"])
    assert on_a and on_a == on_b
    shown = fingerprints(cluster.a.ports["sftp"])
    assert shown and all(f.startswith("SHA256:") for f in shown)
    assert shown == fingerprints(cluster.b.ports["sftp"])


def test_node_killed_mid_upload_leaves_nothing_and_the_retry_on_b_works(
    cluster: Cluster, tmp_path: Path
) -> None:
    brand = new_brand(cluster.ops)
    big = tmp_path / "big.csv"
    block = os.urandom(MIB)
    big.write_bytes(block * 32)
    spool = cluster.a.settings.spool_dir
    a_port = cluster.a.ports["sftp"]

    # 40 Mbit/s: the 32 MiB take ~7 s, so the kill lands while bytes are flowing.
    client = background_put(a_port, brand.box, big, "big.csv", kbit_per_s=40_000)
    try:
        wait_for(
            lambda: any(p.stat().st_size > MIB for p in spool.glob(".upload-*")),
            "bytes of the upload in node A's spool",
            timeout=30,
        )
        os.kill(cluster.a.process.pid, signal.SIGKILL)
        cluster.a.process.wait()
        _, err = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
    assert client.returncode != 0  # the partner sees the transfer fail...
    assert "Traceback" not in err
    # ...and nothing of it exists anywhere: no row, no object, no receipt.
    assert files_of(cluster.ops, brand.box.connection_id) == []
    assert cluster.s3.keys(f"inbox/{brand.box.connection_id}/") == []
    assert cluster.s3.keys(f"folders/{brand.box.connection_id}/") == []

    retry = put(cluster.b.ports["sftp"], brand.box, big, "big.csv")

    assert retry.code == 0, retry.err
    (row,) = files_of(cluster.ops, brand.box.connection_id)
    assert (row.name, row.size) == ("big.csv", 32 * MIB)
    assert cluster.s3.keys(f"inbox/{brand.box.connection_id}/") == [row.storage_key]
    receipt = get(cluster.b.ports["sftp"], brand.box, names.receipt_name("big.csv"), tmp_path)
    assert receipt is not None and row.sha256.encode() in receipt
    # Node A comes back on its own data dir and clears what the kill left in its spool.
    cluster.restart_a()
    assert "removed 1 unfinished uploads" in cluster.a.log()
    assert not list(spool.glob(".upload-*"))


ROWS = 40_000


def _importing_worker(cluster: Cluster) -> Worker:
    """The worker that burns CPU: the one importing (the others wait on Redis)."""
    before = {w.pid: w.cpu_seconds() for w in cluster.workers}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.1)
        used = {w.pid: w.cpu_seconds() - before[w.pid] for w in cluster.workers}
        busy = max(cluster.workers, key=lambda w: used[w.pid])
        if used[busy.pid] >= 0.2:
            return busy
    raise AssertionError("no worker is importing")


def test_worker_killed_mid_import_the_rows_are_imported_exactly_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    brand = new_brand(cluster.ops)
    (tmp_path / "many.csv").write_bytes(brand.conversions(ROWS))
    sent = put(cluster.b.ports["sftp"], brand.box, tmp_path / "many.csv", "many.csv")
    assert sent.code == 0, sent.err
    (row,) = files_of(cluster.ops, brand.box.connection_id)

    def state() -> str:
        return files_of(cluster.ops, brand.box.connection_id)[0].state

    wait_for(lambda: state() == "processing", "a worker to take the file", timeout=30)
    busy = _importing_worker(cluster)
    busy.kill()
    cluster.workers.remove(busy)

    assert state() == "processing"
    assert actions_of(cluster.ops, brand.campaign_id) == 0  # rows and state commit together
    cluster.add_worker()  # the dead one's replacement; either may take the file over

    wait_for(lambda: state() not in ("received", "processing"), "the import", timeout=90)
    (done,) = files_of(cluster.ops, brand.box.connection_id)
    assert done.id == row.id
    assert (done.state, done.attempts) == ("processed", 2)
    assert (done.total_rows, done.ok_rows, done.error_rows) == (ROWS, ROWS, 0)
    assert actions_of(cluster.ops, brand.campaign_id) == ROWS
    summary = _wait_summary(cluster.a.ports["sftp"], brand, "many.csv", tmp_path)
    assert (summary["status"], summary["successfulRowCount"]) == ("COMPLETED", ROWS)


REDIS_OUTAGE = 30.0


def test_redis_down_uploads_are_kept_and_processed_when_it_is_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    brand = new_brand(cluster.ops)
    (tmp_path / "one.csv").write_bytes(brand.conversions(2, prefix="ONE"))
    (tmp_path / "two.csv").write_bytes(brand.conversions(3, prefix="TWO"))

    stopped_at = time.monotonic()
    cluster.redis.stop()
    try:
        to_a = put(cluster.a.ports["sftp"], brand.box, tmp_path / "one.csv", "one.csv")
        to_b = put(cluster.b.ports["sftp"], brand.box, tmp_path / "two.csv", "two.csv")
        assert (to_a.code, to_b.code) == (0, 0), to_a.err + to_b.err
        receipt = get(cluster.b.ports["sftp"], brand.box, names.receipt_name("one.csv"), tmp_path)
        assert receipt is not None
        time.sleep(max(0.0, REDIS_OUTAGE - (time.monotonic() - stopped_at)))
        states = [f.state for f in files_of(cluster.ops, brand.box.connection_id)]
        assert states == ["received", "received"]  # committed, waiting for the queue
        assert all(n.process.poll() is None for n in (cluster.a, cluster.b))
    finally:
        cluster.redis.start()  # same port; empty: whatever was queued is lost

    def processed() -> bool:
        states = [f.state for f in files_of(cluster.ops, brand.box.connection_id)]
        return states == ["processed", "processed"]

    wait_for(processed, "both files processed after Redis came back", timeout=60)
    assert actions_of(cluster.ops, brand.campaign_id) == 5
    summary = _wait_summary(cluster.a.ports["sftp"], brand, "two.csv", tmp_path)
    assert summary["successfulRowCount"] == 3
    assert "could not enqueue file" in cluster.a.log() + cluster.b.log()


def test_postgres_down_logins_fail_cleanly_and_work_again_without_a_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    brand = new_brand(cluster.ops)
    port = cluster.a.ports["sftp"]
    assert sftp(port, brand.box, "pwd\n", tmp_path).code == 0
    mark = len(cluster.a.log())

    cluster.pg.stop()
    try:
        refused = sftp(port, brand.box, "pwd\n", tmp_path)
        assert refused.code != 0
        assert "Permission denied" in refused.err or "closed" in refused.err, refused.err
        assert "Traceback" not in refused.out + refused.err
        assert cluster.a.process.poll() is None  # the node stays up
        assert cluster.b.process.poll() is None
        # ...and says why (its scheduler loop meets the database every second).
        wait_for(
            lambda: "database unavailable" in cluster.a.log()[mark:],
            "node A to log that the database is unavailable",
            timeout=15,
        )
    finally:
        cluster.pg.start()

    assert "Traceback" not in cluster.a.log()[mark:]
    again = sftp(port, brand.box, "pwd\n", tmp_path)
    assert again.code == 0, again.err
    (tmp_path / "after.csv").write_bytes(brand.conversions(2))
    sent = put(cluster.b.ports["sftp"], brand.box, tmp_path / "after.csv", "after.csv")
    assert sent.code == 0, sent.err
    summary = _wait_summary(port, brand, "after.csv", tmp_path)
    assert summary["status"] == "COMPLETED"


def test_postgres_down_a_refused_login_is_logged_as_a_temporary_error(
    cluster: Cluster, tmp_path: Path
) -> None:
    brand = new_brand(cluster.ops)
    mark = len(cluster.a.log())

    cluster.pg.stop()
    try:
        refused = sftp(cluster.a.ports["sftp"], brand.box, "pwd\n", tmp_path)
        time.sleep(0.5)  # the node's log line follows the disconnect
    finally:
        cluster.pg.start()

    assert refused.code != 0
    # The client is told to come back, not that its password is wrong.
    assert "temporarily unavailable" in refused.err, refused.err
    about_logins = [
        line
        for line in cluster.a.log()[mark:].splitlines()
        if " dropyard.gateway" in line
        and ("WARNING" in line or "ERROR" in line)
        and "login" in line.lower()
    ]
    assert about_logins, "no warning about the login the database could not check"


def test_s3_down_an_upload_fails_cleanly_and_works_once_it_is_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    brand = new_brand(cluster.ops)
    (tmp_path / "orders.csv").write_bytes(brand.conversions(2))
    port = cluster.a.ports["sftp"]
    mark = len(cluster.a.log())

    cluster.s3.stop()
    try:
        failed = put(port, brand.box, tmp_path / "orders.csv", "orders.csv")
        assert failed.code != 0
        assert "Traceback" not in failed.out + failed.err
        assert files_of(cluster.ops, brand.box.connection_id) == []
        assert not list(cluster.a.settings.spool_dir.glob(".upload-*"))
        assert cluster.a.process.poll() is None
    finally:
        cluster.s3.start()  # same port, the bucket made again (moto forgot everything)
    logged = cluster.a.log()[mark:]
    assert "object store: could not upload" in logged
    assert "Traceback" not in logged

    sent = put(port, brand.box, tmp_path / "orders.csv", "orders.csv")
    assert sent.code == 0, sent.err
    summary = _wait_summary(cluster.b.ports["sftp"], brand, "orders.csv", tmp_path)
    assert summary["status"] == "COMPLETED"
