"""The scheduler: due times in the connection's zone, claimed once, latest only."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from dropyard.accounts.actors import operator
from dropyard.db.engine import make_engine, make_session_factory
from dropyard.files.models import ScheduledRun
from dropyard.jobs.scheduler import Scheduler, latest_due
from tests.outbound.conftest import World, utc

OP = operator("tests")
PARIS = ZoneInfo("Europe/Paris")


def _feed(world: World, **details: Any) -> int:
    return world.connection({"report": "performance_by_day", **details})


def _runs(world: World, connection: int) -> list[datetime]:
    with world.app.sessions() as s:
        return list(
            s.scalars(
                select(ScheduledRun.due_at)
                .where(ScheduledRun.connection_id == connection)
                .order_by(ScheduledRun.due_at)
            )
        )


def test_latest_due_time_of_presets_and_cron() -> None:
    utc_zone = ZoneInfo("UTC")
    assert latest_due("0 * * * *", utc_zone, utc(2026, 3, 10, 10, 59)) == utc(2026, 3, 10, 10)
    assert latest_due("0 2 * * *", utc_zone, utc(2026, 3, 10, 2)) == utc(2026, 3, 10, 2)
    assert latest_due("0 2 * * *", utc_zone, utc(2026, 3, 10, 1, 59)) == utc(2026, 3, 9, 2)
    # Weekdays at 08:30 in New York (EDT since 8 March): Monday 9 March 12:30 UTC.
    ny = ZoneInfo("America/New_York")
    assert latest_due("30 8 * * 1-5", ny, utc(2026, 3, 9, 12, 31)) == utc(2026, 3, 9, 12, 30)
    assert latest_due("30 8 * * 1-5", ny, utc(2026, 3, 9, 12, 29)) == utc(2026, 3, 6, 13, 30)


def test_dst_neither_skips_nor_doubles_a_daily_run() -> None:
    # 02:30 does not exist on 29 March in Paris: the run is due when clocks jump (01:00 UTC).
    assert latest_due("30 2 * * *", PARIS, utc(2026, 3, 29, 0, 59)) == utc(2026, 3, 28, 1, 30)
    assert latest_due("30 2 * * *", PARIS, utc(2026, 3, 29, 1, 5)) == utc(2026, 3, 29, 1)
    # 02:00 happens twice on 25 October: due at the first one, still that one at the second.
    assert latest_due("0 2 * * *", PARIS, utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 0)
    assert latest_due("0 2 * * *", PARIS, utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 25, 0)


def test_a_preset_fires_once_per_due_time(world: World) -> None:
    connection = _feed(world, schedule="daily")
    scheduler = Scheduler(world.app.sessions)
    [(claimed, due, run_id)] = scheduler.tick(utc(2026, 3, 10, 2, 0, 30))
    assert (claimed, due) == (connection, utc(2026, 3, 10, 2))
    assert scheduler.tick(utc(2026, 3, 10, 2, 0, 50)) == []
    assert scheduler.tick(utc(2026, 3, 10, 23)) == []
    assert scheduler.finish_run(run_id, "done", "made a file")
    assert not scheduler.finish_run("no-such-run", "failed", "x")
    with world.app.sessions() as s:
        run = s.scalars(select(ScheduledRun).where(ScheduledRun.run_id == run_id)).one()
    assert (run.state, run.reason) == ("done", "made a file")


def test_a_cron_in_a_time_zone(world: World) -> None:
    connection = _feed(world, schedule="15 6 * * *", timezone="Asia/Tokyo")
    scheduler = Scheduler(world.app.sessions)
    [(_, due, _)] = scheduler.tick(utc(2026, 3, 9, 21, 14))
    assert due == utc(2026, 3, 8, 21, 15)  # 06:15 on the 9th in Tokyo
    [(_, due, _)] = scheduler.tick(utc(2026, 3, 9, 21, 15))
    assert due == utc(2026, 3, 9, 21, 15)
    assert _runs(world, connection) == [utc(2026, 3, 8, 21, 15), utc(2026, 3, 9, 21, 15)]


def test_missed_ticks_fire_only_the_latest(world: World) -> None:
    connection = _feed(world, schedule="hourly")
    scheduler = Scheduler(world.app.sessions)
    scheduler.tick(utc(2026, 3, 10, 1, 0, 5))
    # The scheduler was down for two days: one run, for the latest hour.
    [(_, due, _)] = scheduler.tick(utc(2026, 3, 12, 7, 42))
    assert due == utc(2026, 3, 12, 7)
    assert _runs(world, connection) == [utc(2026, 3, 10, 1), utc(2026, 3, 12, 7)]


def test_nothing_fires_for_times_before_the_connection_existed(world: World) -> None:
    connection = _feed(world, schedule="daily")
    world.set_created(connection, utc(2026, 3, 10, 2, 30))
    scheduler = Scheduler(world.app.sessions)
    assert scheduler.tick(utc(2026, 3, 10, 3)) == []
    [(_, due, _)] = scheduler.tick(utc(2026, 3, 11, 2, 0, 1))
    assert due == utc(2026, 3, 11, 2)


def test_a_paused_connection_never_fires(world: World) -> None:
    connection = _feed(world, schedule="hourly")
    world.app.connections.pause(OP, connection)
    scheduler = Scheduler(world.app.sessions)
    assert scheduler.tick(utc(2026, 3, 10, 5, 1)) == []
    world.app.connections.archive(OP, connection)
    assert scheduler.tick(utc(2026, 3, 10, 6, 1)) == []
    assert _runs(world, connection) == []


def test_only_scheduled_connections_fire(world: World) -> None:
    hosted = _feed(world, schedule="hourly")
    deliver = world.connection(
        {"schedule": "hourly", "host": "files.partner.example", "folder": "/in"},
        methodology="deliver",
    )
    claims = Scheduler(world.app.sessions).tick(utc(2026, 3, 10, 5, 1))
    assert sorted(c[0] for c in claims) == [hosted, deliver]


def test_two_schedulers_in_the_same_minute_claim_once(world: World) -> None:
    connection = _feed(world, schedule="hourly")
    now = utc(2026, 3, 10, 5, 0, 10)
    first, second = Scheduler(world.app.sessions), Scheduler(world.app.sessions)
    # Both see the run as due before either claims it; the database picks one.
    assert first.due(now) == second.due(now) == [(connection, utc(2026, 3, 10, 5))]
    assert first.claim(connection, utc(2026, 3, 10, 5), now=now) is not None
    assert second.claim(connection, utc(2026, 3, 10, 5), now=now) is None
    assert _runs(world, connection) == [utc(2026, 3, 10, 5)]


def test_concurrent_ticks_on_separate_engines(world: World) -> None:
    connections = [_feed(world, schedule="hourly") for _ in range(3)]
    now = utc(2026, 3, 10, 6, 0, 1)
    url = world.app.settings.resolved_database_url
    engines = [make_engine(url) for _ in range(4)]
    schedulers = [Scheduler(make_session_factory(e)) for e in engines]
    results: list[list[tuple[int, datetime, str]]] = [[] for _ in schedulers]
    barrier = threading.Barrier(len(schedulers))

    def tick(index: int) -> None:
        barrier.wait()
        results[index] = schedulers[index].tick(now)

    threads = [threading.Thread(target=tick, args=(i,)) for i in range(len(schedulers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    claimed = sorted(c[0] for result in results for c in result)
    assert claimed == sorted(connections)
    with world.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ScheduledRun)) == 3


def test_an_edited_schedule_does_not_fire_an_earlier_time_again(world: World) -> None:
    connection = _feed(world, schedule="0 4 * * *")
    scheduler = Scheduler(world.app.sessions)
    assert len(scheduler.tick(utc(2026, 3, 10, 4, 30))) == 1
    world.app.connections.update_details(OP, connection, changes={"schedule": "0 3 * * *"})
    assert scheduler.tick(utc(2026, 3, 10, 4, 31)) == []
    assert len(scheduler.tick(utc(2026, 3, 11, 3) + timedelta(seconds=1))) == 1
