"""Brute-force defence shared by every front-end (SFTP, FTP, web sign-in) and every node.

Each failed login scores against the client's address; `max_failures` failures within a
window (counted from the first of them) ban the address for `ban_seconds`, twice as long
on every repeat up to `max_ban_seconds`. A day (`max_ban_seconds`) after a ban ended
without another, the address starts afresh. Addresses on the allow-list are never banned.

The score lives in the database (`bans`), so a ban earned on one node holds on all.
Scoring is one transaction that locks the address's row (SQLite: BEGIN IMMEDIATE;
PostgreSQL: SELECT ... FOR UPDATE), so concurrent failures on several nodes all count.
`is_banned` runs on every connection, some of them on an event loop: it answers from an
in-process copy of the current bans, reloaded at most every `cache_seconds` (2 s), so a
ban made on another node takes up to that long to arrive here; bans made here count at
once. Without a database (a Defender built alone, as tests do) it keeps its scores in a
private in-memory SQLite: one implementation either way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from sqlalchemy import create_engine, delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from dropyard.cluster.models import Ban
from dropyard.cluster.sql import insert_if_missing
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Transient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DefenderPolicy:
    max_failures: int = 5
    window_seconds: float = 600.0
    ban_seconds: float = 1800.0
    max_ban_seconds: float = 86400.0
    allow: tuple[str, ...] = ()


class Defender:
    """Scores failed logins per address and answers whether an address is banned."""

    def __init__(
        self,
        policy: DefenderPolicy | None = None,
        *,
        sessions: SessionFactory | None = None,
        clock: Callable[[], datetime] = utcnow,
        cache_seconds: float = 2.0,
    ) -> None:
        self.policy = policy or DefenderPolicy()
        self._private = sessions is None
        self._sessions = sessions or _private_database()
        self._clock = clock
        self._cache_seconds = cache_seconds
        # A private in-memory database is one connection: one user at a time.
        self._db_lock = threading.Lock() if self._private else None
        self._cache_lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._bans: dict[str, datetime] = {}
        self._loaded_at: float | None = None
        self._allow: list[IPv4Network | IPv6Network] = [
            ip_network(net, strict=False) for net in self.policy.allow
        ]

    def _allowed(self, address: str) -> bool:
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._allow)

    # -- asking -------------------------------------------------------------------------

    def is_banned(self, address: str) -> bool:
        if self._allowed(address):
            return False
        self._refresh_if_stale()
        with self._cache_lock:
            until = self._bans.get(address)
        return until is not None and until > self._clock()

    def banned(self) -> Iterable[str]:
        """Every address banned now, on any node."""
        now = self._clock()
        with self._db():
            try:
                with self._sessions() as session:
                    return list(session.scalars(select(Ban.address).where(Ban.banned_until > now)))
            except SQLAlchemyError:
                raise Transient("the list of banned addresses is unavailable") from None

    # -- scoring ------------------------------------------------------------------------

    def failure(self, address: str) -> bool:
        """Score one failed login. True when the address is now banned."""
        if self._allowed(address):
            return False
        now = self._clock()
        try:
            with self._db(), transaction(self._sessions) as session:
                insert_if_missing(
                    session, Ban, address=address, failures=0, window_started_at=now, strikes=0
                )
                row = session.get(Ban, address, with_for_update=True, populate_existing=True)
                until = None if row is None else _score(row, self.policy, now)
        except SQLAlchemyError:
            log.warning("could not score a failed login from %s: database unavailable", address)
            raise Transient("logins cannot be checked right now; try again later") from None
        if until is None:
            return False
        with self._cache_lock:
            self._bans[address] = until
        return True

    def success(self, address: str) -> None:
        """A good login: the address's failures so far are forgiven (not its bans)."""
        try:
            with self._db():
                with self._sessions() as session:
                    failures = session.scalar(select(Ban.failures).where(Ban.address == address))
                if failures:  # a read first: most logins have nothing to forgive
                    with transaction(self._sessions) as session:
                        session.execute(
                            update(Ban).where(Ban.address == address).values(failures=0)
                        )
        except SQLAlchemyError:
            log.warning("could not reset the failed logins of %s", address)

    def prune(self) -> int:
        """Forget addresses with nothing left to remember: no failures in the window and
        no ban for a day. Returns how many."""
        now = self._clock()
        quiet = now - _seconds(self.policy.window_seconds)
        forgiven = now - _seconds(self.policy.max_ban_seconds)
        with self._db(), transaction(self._sessions) as session:
            done = session.execute(
                delete(Ban).where(
                    Ban.window_started_at < quiet,
                    (Ban.banned_until.is_(None) & (Ban.strikes == 0))
                    | (Ban.banned_until < forgiven),
                )
            )
            return int(done.rowcount or 0)  # type: ignore[attr-defined]

    # -- the cache ----------------------------------------------------------------------

    def _refresh_if_stale(self) -> None:
        loaded = self._loaded_at
        if loaded is not None and time.monotonic() - loaded < self._cache_seconds:
            return
        if not self._refreshing.acquire(blocking=False):
            return  # another thread is on it: answer from what we have
        try:
            in_loop = _on_event_loop()
        except BaseException:
            self._refreshing.release()
            raise
        if in_loop:  # never block an event loop on the database
            threading.Thread(target=self._refresh, name="dropyard-bans", daemon=True).start()
        else:
            self._refresh()

    def _refresh(self) -> None:
        """Reload the bans in force (holds `_refreshing`, releases it)."""
        try:
            now = self._clock()
            with self._db(), self._sessions() as session:
                rows = session.execute(
                    select(Ban.address, Ban.banned_until).where(Ban.banned_until > now)
                ).all()
            fresh = {address: until for address, until in rows if until is not None}
            with self._cache_lock:
                self._bans = fresh
        except SQLAlchemyError:
            # Keep the bans we knew; the logins themselves fail while the database is down.
            log.warning("could not reload the banned addresses; using the last known ones")
        finally:
            self._loaded_at = time.monotonic()
            self._refreshing.release()

    def _db(self) -> threading.Lock | _NoLock:
        return self._db_lock if self._db_lock is not None else _NO_LOCK


def _score(row: Ban, policy: DefenderPolicy, now: datetime) -> datetime | None:
    """Count one failure on `row`: the end of the ban it is under now, or None."""
    if row.banned_until is not None and row.banned_until > now:
        return row.banned_until  # a login that started before the ban: nothing to add
    if row.banned_until is not None and now - row.banned_until > _seconds(policy.max_ban_seconds):
        row.strikes = 0  # a clean day since the last ban: start afresh
    if row.failures == 0 or now - row.window_started_at >= _seconds(policy.window_seconds):
        row.failures, row.window_started_at = 0, now
    row.failures += 1
    if row.failures < policy.max_failures:
        return None
    row.failures = 0
    row.strikes += 1
    length = min(policy.ban_seconds * 2 ** (row.strikes - 1), policy.max_ban_seconds)
    row.banned_until = now + _seconds(length)
    return row.banned_until


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _private_database() -> SessionFactory:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    Ban.metadata.create_all(engine, tables=[Ban.__table__])  # type: ignore[list-item]
    return sessionmaker(engine, expire_on_commit=False)
