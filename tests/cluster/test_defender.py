"""The defender's bans hold on every node: scores and bans live in the shared database."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support import drop_box

from dropyard.app import Dropyard
from dropyard.cluster.models import Ban
from dropyard.db.engine import make_engine, make_session_factory
from dropyard.errors import Transient
from dropyard.gateway.defender import Defender, DefenderPolicy

ATTACKER = "203.0.113.7"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def pair(
    app: Dropyard, node_b: Dropyard, policy: DefenderPolicy, clock: Clock
) -> tuple[Defender, Defender]:
    return (
        Defender(policy, sessions=app.sessions, clock=clock, cache_seconds=0),
        Defender(policy, sessions=node_b.sessions, clock=clock, cache_seconds=0),
    )


def test_a_ban_earned_on_one_node_refuses_the_right_password_on_the_other(
    app: Dropyard, node_b: Dropyard
) -> None:
    box = drop_box(app)
    for _ in range(app.settings.ban_after_failures):
        assert (
            app.gateway.login_password(box.login, "wrong", protocol="ftp", address=ATTACKER) is None
        )
    assert app.defender.is_banned(ATTACKER)  # at once on the node that banned
    # Node B learns of it within its cache time (2 s): then the right password fails there.
    deadline = time.monotonic() + 5
    while not node_b.defender.is_banned(ATTACKER):
        assert time.monotonic() < deadline, "node B never saw the ban"
        time.sleep(0.1)
    assert (
        node_b.gateway.login_password(box.login, box.password, protocol="sftp", address=ATTACKER)
        is None
    )
    assert list(node_b.defender.banned()) == [ATTACKER]
    # Everybody else still gets in on B.
    session = node_b.gateway.login_password(
        box.login, box.password, protocol="sftp", address="198.51.100.1"
    )
    assert session is not None
    session.close()


def test_failures_on_both_nodes_add_up_and_the_ban_lasts_twice_as_long_each_time(
    app: Dropyard, node_b: Dropyard
) -> None:
    clock = Clock()
    policy = DefenderPolicy(max_failures=4, ban_seconds=100, max_ban_seconds=1000)
    a, b = pair(app, node_b, policy, clock)
    lengths = []
    for _ in range(6):
        assert not a.failure(ATTACKER)
        assert not b.failure(ATTACKER)
        assert not a.failure(ATTACKER)
        assert b.failure(ATTACKER)  # the fourth, whichever node sees it
        with app.sessions() as session:
            until = session.scalar(select(Ban.banned_until).where(Ban.address == ATTACKER))
        assert until is not None
        lengths.append((until - clock.now).total_seconds())
        clock.advance(lengths[-1] - 1)
        assert a.is_banned(ATTACKER) and b.is_banned(ATTACKER)
        clock.advance(1)
        assert not a.is_banned(ATTACKER) and not b.is_banned(ATTACKER)
    assert lengths == [100, 200, 400, 800, 1000, 1000]
    # A day without a ban since the last one ended: the next ban is short again.
    clock.advance(1001)
    for _ in range(3):
        assert not a.failure(ATTACKER)
    assert b.failure(ATTACKER)
    with app.sessions() as session:
        row = session.get(Ban, ATTACKER)
        assert row is not None and row.banned_until == clock.now + timedelta(seconds=100)


def test_concurrent_failures_on_two_nodes_are_all_counted(app: Dropyard, node_b: Dropyard) -> None:
    policy = DefenderPolicy(max_failures=12)
    nodes = [Defender(policy, sessions=app.sessions), Defender(policy, sessions=node_b.sessions)]
    start = threading.Barrier(12)
    answers: list[bool] = []

    def fail(defender: Defender) -> None:
        start.wait()
        answers.append(defender.failure(ATTACKER))

    threads = [threading.Thread(target=fail, args=(nodes[i % 2],)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] * 11 + [True]  # exactly the twelfth banned
    assert nodes[0].is_banned(ATTACKER) and nodes[1].is_banned(ATTACKER)


def test_failures_outside_the_window_do_not_add_up_and_a_good_login_forgives(
    app: Dropyard, node_b: Dropyard
) -> None:
    clock = Clock()
    a, b = pair(app, node_b, DefenderPolicy(max_failures=3, window_seconds=60), clock)
    a.failure(ATTACKER)
    a.failure(ATTACKER)
    clock.advance(61)
    assert not b.failure(ATTACKER)
    assert not b.failure(ATTACKER)
    b.success(ATTACKER)  # a good login on B forgives the failures counted on A and B
    assert not a.failure(ATTACKER)
    assert not a.failure(ATTACKER)
    assert a.failure(ATTACKER)


def test_the_allow_list_is_never_banned_even_by_a_node_without_it(
    app: Dropyard, node_b: Dropyard
) -> None:
    clock = Clock()
    allowing = DefenderPolicy(max_failures=2, allow=("10.0.0.0/8", "2001:db8::/32"))
    a = Defender(allowing, sessions=app.sessions, clock=clock, cache_seconds=0)
    for address in ("10.1.2.3", "2001:db8::5"):
        assert not any(a.failure(address) for _ in range(10))
        assert not a.is_banned(address)
    with app.sessions() as session:
        assert session.scalars(select(Ban.address)).all() == []  # not even scored
    # A node configured without the allow-list bans it; the allowing node still lets it in.
    b = Defender(DefenderPolicy(max_failures=2), sessions=node_b.sessions, clock=clock)
    b.failure("10.1.2.3")
    assert b.failure("10.1.2.3")
    assert b.is_banned("10.1.2.3")
    assert not a.is_banned("10.1.2.3")


def test_old_scores_are_forgotten(app: Dropyard, node_b: Dropyard) -> None:
    clock = Clock()
    policy = DefenderPolicy(max_failures=2, window_seconds=60, ban_seconds=100)
    a, b = pair(app, node_b, policy, clock)
    a.failure("192.0.2.1")  # one failure
    a.failure(ATTACKER)
    a.failure(ATTACKER)  # banned
    clock.advance(120)
    assert b.prune() == 1  # the lone failure is forgotten; the ban is remembered a day
    clock.advance(86400)
    assert b.prune() == 1
    with app.sessions() as session:
        assert session.scalars(select(Ban.address)).all() == []


def test_without_a_database_of_its_own_it_keeps_scores_in_memory() -> None:
    clock = Clock()
    defender = Defender(DefenderPolicy(max_failures=2, ban_seconds=30), clock=clock)
    assert not defender.failure(ATTACKER)
    assert defender.failure(ATTACKER)
    assert defender.is_banned(ATTACKER)
    assert list(defender.banned()) == [ATTACKER]
    clock.advance(31)
    assert not defender.is_banned(ATTACKER)


def test_when_the_database_goes_away_logins_fail_and_known_bans_hold(tmp_path: Path) -> None:
    from dropyard.db import migrate

    path = tmp_path / "bans.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    defender = Defender(
        DefenderPolicy(max_failures=1), sessions=make_session_factory(engine), cache_seconds=0
    )
    assert defender.failure(ATTACKER)
    engine.dispose()
    path.unlink()  # the next connection finds an empty database: no table, every query fails
    with pytest.raises(Transient) as raised:
        defender.failure("198.51.100.9")
    assert raised.value.message == "logins cannot be checked right now; try again later"
    assert defender.is_banned(ATTACKER)  # the last known bans still hold
    assert not defender.is_banned("198.51.100.9")
    defender.success("198.51.100.9")  # a good login is not refused for this
    with pytest.raises(Transient):
        list(defender.banned())
    engine.dispose()
