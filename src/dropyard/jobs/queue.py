"""Jobs on Huey: one queue for the whole installation, SQLite by default, Redis to scale.

The database is the source of truth: a `received` file IS the job, and the queue entry is
only the nudge that gets it done soon. The periodic sweep re-enqueues whatever a lost
message, a stopped Redis or a killed worker left behind.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from dropyard.errors import Terminal
from dropyard.files.processing import Processor
from dropyard.jobs.scheduler import Scheduler
from dropyard.ledger.service import lock_due
from dropyard.outbound.service import OutboundService
from dropyard.settings import Settings

log = logging.getLogger(__name__)


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisHuey(settings.queue_name, url=settings.redis_url, utc=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(settings.queue_name, filename=str(settings.data_dir / "jobs.db"), utc=True)


class Jobs:
    """The tasks Dropyard runs in the background, registered on one Huey."""

    def __init__(
        self,
        huey: Huey,
        processor: Processor,
        *,
        outbound: OutboundService,
        scheduler: Scheduler,
    ) -> None:
        self.huey = huey
        self._processor = processor
        self._outbound = outbound
        self._scheduler = scheduler
        self._process = huey.task(name="process_file")(self._process_file)
        self._run = huey.task(name="outbound_run", retries=3, retry_delay=60)(self._run_outbound)
        self._sweep = huey.periodic_task(crontab(minute="*"), name="sweep")(self.sweep)
        self._tick = huey.periodic_task(crontab(minute="*"), name="schedule")(self.tick)
        self._expire = huey.periodic_task(crontab(minute="7"), name="expire")(outbound.expire)
        self._lock = huey.periodic_task(crontab(minute="*/5"), name="lock_actions")(
            lambda: lock_due(processor.sessions)
        )

    def tick(self) -> int:
        """Enqueue every scheduled run that is due now (each claimed once)."""
        claimed = self._scheduler.tick()
        for connection_id, due_at, run_id in claimed:
            self.enqueue_run(connection_id, run_id=run_id, due_at=due_at)
        return len(claimed)

    def enqueue_run(self, connection_id: int, *, run_id: str, due_at: datetime) -> None:
        self._run(connection_id, run_id, due_at.isoformat())

    def _run_outbound(self, connection_id: int, run_id: str, due_at: str) -> None:
        """One outbound run at its due time (not the time it runs: a late run names and
        ranges its file as if on time). Its outcome is on the run and the file's history."""
        try:
            self._outbound.run(connection_id, run_id=run_id, at=datetime.fromisoformat(due_at))
        except Terminal:
            return  # recorded on the run; retrying cannot help
        # Transient and unexpected errors propagate: Huey retries the task.

    def enqueue_file(self, file_id: int, *, delay: float = 0.0) -> None:
        if delay > 0:
            self._process.schedule(args=(file_id,), delay=delay)
        else:
            self._process(file_id)

    def _process_file(self, file_id: int) -> None:
        state = self._processor.process(file_id)
        if state == "received":  # given back after a transient error: try again later
            due = self._processor.retry_delay(file_id)
            if due is not None:
                self.enqueue_file(file_id, delay=due)

    def sweep(self) -> int:
        """Enqueue every file that is due and not in flight. Returns how many."""
        ids = self._processor.due()
        for file_id in ids:
            try:
                self.enqueue_file(file_id)
            except Exception:
                log.warning("the queue is unreachable; %d files wait", len(ids))
                break
        return len(ids)


class Sweeper:
    """Re-enqueues due files every few seconds (Huey's periodic tasks tick per minute)."""

    def __init__(self, jobs: Jobs, *, every: float) -> None:
        self._jobs = jobs
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dropyard-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._jobs.sweep()
            except Exception:
                log.exception("sweep failed; trying again")
            self._stop.wait(self._every)


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A consumer inside `dropyard serve`: the server owns the process's signals."""

    def _set_signal_handlers(self) -> None:
        return None


def embedded_consumer(huey: Huey, *, workers: int) -> EmbeddedConsumer:
    return EmbeddedConsumer(
        huey, workers=workers, worker_type="thread", periodic=True, check_worker_health=False
    )
