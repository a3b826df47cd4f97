"""The scheduler role: one leader at a time runs the installation's periodic work.

Every node with the scheduler role runs a `LeaderLoop`. Every `renew_seconds` (10 s) it
takes or renews the lease "scheduler" (held `lease_seconds`, 45 s); the holder runs the
duties, each at its own pace: scheduled runs (claim and enqueue), the sweep of files a
lost message left behind, the expiry of outbound files, action locking, forgetting old
scores of the defender. When a leader dies without letting go, its lease runs out and
another node takes over within a minute. During such a handover two nodes may both run
a duty once: claims are unique in the database, so a run is still enqueued once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dropyard.cluster.lease import Lease
from dropyard.errors import Invalid

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"


@dataclass(frozen=True)
class Duty:
    """Periodic work for the leader: `run` every `every` seconds."""

    name: str
    every: float
    run: Callable[[], object]


class LeaderLoop:
    """Takes and keeps the lease in a thread of its own; while leading, runs the duties."""

    def __init__(
        self,
        lease: Lease,
        duties: Sequence[Duty],
        *,
        renew_seconds: float,
        lease_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew_seconds < lease_seconds:
            raise Invalid(
                f"the scheduler lease ({lease_seconds} s) must outlast its renewal "
                f"({renew_seconds} s), or the leader would lose it between two renewals",
                field="scheduler_lease_seconds",
            )
        self._lease = lease
        self._duties = tuple(duties)
        self._renew_every = renew_seconds
        self._clock = clock
        self._leading = False
        self._renew_at = 0.0
        self._next: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def holder(self) -> str:
        return self._lease.holder

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="dropyard-leader", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop the loop; with `release`, let the lease go so that another node need not
        wait for it to run out (False plays a node that died)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if release and self._leading:
            try:
                self._lease.release()
            except Exception:
                log.warning("could not release the scheduler lease; it runs out by itself")
        if self._leading:
            log.info("scheduler leader %s stepped down", self.holder)
        self._leading = False

    def step(self) -> float:
        """Renew (when due) and run the duties that are due. Seconds until the next step."""
        now = self._clock()
        if not self._leading or now >= self._renew_at:
            self._set_leading(self._try_take())
            self._renew_at = now + self._renew_every
        if not self._leading:
            return self._renew_every
        for duty in self._duties:
            if self._stop.is_set():
                break
            if now >= self._next.get(duty.name, 0.0):
                self._next[duty.name] = now + duty.every
                try:
                    duty.run()
                except Exception:
                    log.exception("the scheduler duty %s failed; it runs again later", duty.name)
        upcoming = [self._renew_at, *self._next.values()]
        return max(0.0, min(upcoming) - self._clock())

    def _try_take(self) -> bool:
        try:
            return self._lease.take()
        except Exception:
            # Cannot tell whether we still hold it: stand down until the database answers.
            log.warning("the scheduler lease cannot be checked (database unavailable)")
            return False

    def _set_leading(self, leading: bool) -> None:
        if leading and not self._leading:
            log.info("this node (%s) is now the scheduler leader", self.holder)
            self._next.clear()  # a new leader runs every duty at once
        elif self._leading and not leading:
            log.warning("this node (%s) lost the scheduler lease; another node leads", self.holder)
        self._leading = leading

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.step()
            except Exception:
                log.exception("the scheduler loop failed; trying again")
                wait = self._renew_every
            self._stop.wait(wait)
