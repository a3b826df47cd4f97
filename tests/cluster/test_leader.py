"""Scheduler leadership: one leader among the nodes with the scheduler role; when it dies,
another takes over after its lease runs out; a due run is enqueued once however many
nodes race."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from tests.support import drop_box

from dropyard.app import Dropyard
from dropyard.cluster.leader import LEASE_NAME, Duty, LeaderLoop
from dropyard.cluster.lease import Lease, node_name
from dropyard.connections.models import Connection
from dropyard.errors import Invalid
from dropyard.files.models import ScheduledRun


class Clocks:
    """The database's UTC time and the loop's monotonic time, moved together."""

    def __init__(self) -> None:
        self.utc = datetime(2026, 3, 1, 12, tzinfo=UTC)
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.utc += timedelta(seconds=seconds)
        self.mono += seconds


class Node:
    def __init__(self, app: Dropyard, clocks: Clocks, name: str) -> None:
        self.runs: list[str] = []
        self.lease = Lease(
            app.sessions, name=LEASE_NAME, holder=name, seconds=45, clock=lambda: clocks.utc
        )
        self.loop = LeaderLoop(
            self.lease,
            [
                Duty("schedule", 10, lambda: self.runs.append("schedule")),
                Duty("expire", 3600, lambda: self.runs.append("expire")),
            ],
            renew_seconds=10,
            lease_seconds=45,
            clock=lambda: clocks.mono,
        )


def test_one_leader_and_a_dead_one_is_replaced_after_its_lease(
    app: Dropyard, node_b: Dropyard
) -> None:
    clocks = Clocks()
    a, b = Node(app, clocks, "node-a"), Node(node_b, clocks, "node-b")
    a.loop.step()
    b.loop.step()
    assert a.loop.leading and not b.loop.leading
    assert a.runs == ["schedule", "expire"] and b.runs == []
    for _ in range(6):  # a minute of renewals: A keeps it, B keeps waiting
        clocks.advance(10)
        a.loop.step()
        b.loop.step()
    assert a.loop.leading and not b.loop.leading
    assert a.runs.count("schedule") == 7 and a.runs.count("expire") == 1
    assert b.runs == []
    assert b.lease.current_holder() == "node-a"

    # A dies (no release). Until its last lease runs out, B waits.
    clocks.advance(40)
    b.loop.step()
    assert not b.loop.leading
    clocks.advance(10)  # 50 s after A's last renewal
    b.loop.step()
    assert b.loop.leading
    assert b.runs == ["schedule", "expire"]
    assert a.lease.current_holder() == "node-b"
    # A comes back: it finds the lease taken and stays a follower.
    a.loop.step()
    assert not a.loop.leading


def test_a_leader_that_stops_cleanly_hands_over_at_the_next_renewal(
    app: Dropyard, node_b: Dropyard
) -> None:
    clocks = Clocks()
    a, b = Node(app, clocks, "node-a"), Node(node_b, clocks, "node-b")
    a.loop.step()
    b.loop.step()
    a.loop.stop()  # releases the lease
    assert not a.loop.leading
    clocks.advance(10)
    b.loop.step()
    assert b.loop.leading


def test_leader_threads_on_two_nodes_take_over_in_real_time(
    app: Dropyard, node_b: Dropyard
) -> None:
    ticks = {"a": 0, "b": 0}

    def loop(node: Dropyard, key: str) -> LeaderLoop:
        def duty() -> None:
            ticks[key] += 1

        lease = Lease(node.sessions, name=LEASE_NAME, holder=node_name(), seconds=1.5)
        return LeaderLoop(
            lease, [Duty("schedule", 0.1, duty)], renew_seconds=0.3, lease_seconds=1.5
        )

    a, b = loop(app, "a"), loop(node_b, "b")
    a.start()
    time.sleep(0.3)
    b.start()
    try:
        time.sleep(1.0)
        assert a.leading and not b.leading
        assert ticks["a"] > 3 and ticks["b"] == 0
        a.stop(release=False)  # a node that died: its lease stays until it runs out
        stopped = time.monotonic()
        deadline = stopped + 5
        while not b.leading:
            assert time.monotonic() < deadline, "node B never took over"
            time.sleep(0.02)
        waited = time.monotonic() - stopped
        assert 0.5 < waited < 2.5  # after the lease ran out, within one renewal
        time.sleep(0.3)
        assert ticks["b"] > 0
    finally:
        a.stop()
        b.stop()


def test_racing_leaders_enqueue_a_due_run_once(app: Dropyard, node_b: Dropyard) -> None:
    box = drop_box(
        app,
        direction="outbound",
        methodology="hosted",
        data_type="reports",
        details={"report": "performance_by_day", "schedule": "hourly"},
    )
    with app.sessions() as session, session.begin():
        session.execute(
            update(Connection)
            .where(Connection.id == box.connection_id)
            .values(created_at=datetime.now(UTC) - timedelta(days=1))
        )
    nodes = [app, node_b] * 3
    start = threading.Barrier(len(nodes))
    claimed: list[int] = []

    def tick(node: Dropyard) -> None:
        start.wait()
        claimed.append(node.jobs.tick())

    threads = [threading.Thread(target=tick, args=(n,)) for n in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == [0] * 5 + [1]
    # Each node has a queue of its own here (SQLite Huey): one message in all of them.
    assert app.jobs.huey.pending_count() + node_b.jobs.huey.pending_count() == 1
    with app.sessions() as session:
        runs = session.scalar(
            select(func.count())
            .select_from(ScheduledRun)
            .where(ScheduledRun.connection_id == box.connection_id)
        )
    assert runs == 1


def test_a_lease_that_does_not_outlast_its_renewal_is_refused(app: Dropyard) -> None:
    lease = Lease(app.sessions, name=LEASE_NAME, holder="x", seconds=10)
    with pytest.raises(Invalid, match="must outlast its renewal") as raised:
        LeaderLoop(lease, [], renew_seconds=10, lease_seconds=10)
    assert raised.value.field == "scheduler_lease_seconds"


def test_a_failing_duty_does_not_stop_the_others(app: Dropyard) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    lease = Lease(app.sessions, name=LEASE_NAME, holder="x", seconds=45)
    loop = LeaderLoop(
        lease,
        [Duty("broken", 10, broken), Duty("fine", 10, lambda: ran.append("fine"))],
        renew_seconds=10,
        lease_seconds=45,
    )
    loop.step()
    assert loop.leading and ran == ["fine"]
