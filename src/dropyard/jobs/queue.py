"""Jobs on Huey: one queue for the whole installation, SQLite by default, Redis to scale.

The database is the source of truth: a `received` file IS the job, and the queue entry is
only the nudge that gets it done soon. The sweep re-enqueues whatever a lost message, a
stopped Redis or a killed worker left behind.

Periodic work (the sweep, scheduled runs, expiry, action locking) is not a Huey periodic
task: N consumers would all run it. The scheduler leader (`cluster/leader.py`) calls it,
and consumers run with `periodic=False`.
"""

from __future__ import annotations

import logging
from datetime import datetime

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

from dropyard.errors import Terminal
from dropyard.files.processing import Processor
from dropyard.jobs.scheduler import Scheduler
from dropyard.ledger.service import lock_due
from dropyard.metrics import Metrics
from dropyard.outbound.service import OutboundService
from dropyard.remote.service import RemoteService
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
        metrics: Metrics | None = None,
        remote: RemoteService | None = None,
    ) -> None:
        self.huey = huey
        self._metrics = metrics or Metrics()
        self._processor = processor
        self._outbound = outbound
        self._scheduler = scheduler
        self._remote = remote
        self._process = huey.task(name="process_file")(self._process_file)
        self._run = huey.task(name="outbound_run", retries=3, retry_delay=60)(self._run_outbound)
        # Retries with backoff are the delivery's own (remote/deliver.py RETRY_AFTER): a
        # failed attempt schedules the next one at its due time.
        self._deliver = huey.task(name="deliver_file")(self._deliver_file)

    def expire(self) -> int:
        """Remove outbound files past their retention. Returns how many."""
        return self._outbound.expire()

    def lock_actions(self) -> int:
        """PENDING actions past their lock period become LOCKED. Returns how many."""
        return lock_due(self._processor.sessions)

    def tick(self) -> int:
        """Enqueue every scheduled run that is due now (each claimed once)."""
        claimed = self._scheduler.tick()
        for connection_id, due_at, run_id in claimed:
            self.enqueue_run(connection_id, run_id=run_id, due_at=due_at)
        return len(claimed)

    def enqueue_run(self, connection_id: int, *, run_id: str, due_at: datetime) -> None:
        self._run(connection_id, run_id, due_at.isoformat())

    def _run_outbound(self, connection_id: int, run_id: str, due_at: str) -> None:
        """One scheduled run at its due time (not the time it runs: a late run names and
        ranges its file as if on time). Its outcome is on the run and the file's history.
        A `pull` connection's run is a pull; a `deliver` connection's file is then sent."""
        if self._remote is not None and self._remote.is_pull(connection_id):
            with self._metrics.job("pull_run"):
                result = self._remote.pull(connection_id, run_id=run_id)
                if result.state == "failed":
                    self._metrics.job_failed("pull_run")
            return  # recorded on the run; the next scheduled run tries again
        with self._metrics.job("outbound_run"):
            try:
                made = self._outbound.run(
                    connection_id, run_id=run_id, at=datetime.fromisoformat(due_at)
                )
            except Terminal:
                self._metrics.job_failed("outbound_run")
                return  # recorded on the run; retrying cannot help
        # Transient and unexpected errors propagate: Huey retries the task.
        if made.file is not None and made.file.state == "generated":
            self.enqueue_delivery(made.file.id)

    def enqueue_delivery(self, file_id: int, *, delay: float = 0.0) -> None:
        """Nudge a delivery attempt (the sweep finds it anyway once due)."""
        if self._remote is None:
            return
        if delay > 0:
            self._deliver.schedule(args=(file_id,), delay=delay)
        else:
            self._deliver(file_id)

    def _deliver_file(self, file_id: int) -> None:
        if self._remote is None:
            return
        with self._metrics.job("deliver_file"):
            result = self._remote.deliver(file_id)
            if result.failed:
                self._metrics.job_failed("deliver_file")
        delay = self._remote.retry_delay(result)
        if delay is not None:
            self.enqueue_delivery(file_id, delay=max(delay, 1.0))

    def enqueue_file(self, file_id: int, *, delay: float = 0.0) -> None:
        if delay > 0:
            self._process.schedule(args=(file_id,), delay=delay)
        else:
            self._process(file_id)

    def _process_file(self, file_id: int) -> None:
        with self._metrics.job("process_file"):
            state = self._processor.process(file_id)
            if state in ("received", "dead"):  # this attempt failed (not the file's content)
                self._metrics.job_failed("process_file")
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
        return len(ids) + self._sweep_deliveries()

    def _sweep_deliveries(self) -> int:
        """Outbound files whose delivery attempt is due (a lost nudge delays, never loses)."""
        if self._remote is None:
            return 0
        ids = self._remote.due_deliveries()
        for file_id in ids:
            try:
                self.enqueue_delivery(file_id)
            except Exception:
                log.warning("the queue is unreachable; %d deliveries wait", len(ids))
                break
        return len(ids)


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A consumer inside `dropyard serve`: the server owns the process's signals."""

    def _set_signal_handlers(self) -> None:
        return None


def embedded_consumer(huey: Huey, *, workers: int) -> EmbeddedConsumer:
    return EmbeddedConsumer(
        huey, workers=workers, worker_type="thread", periodic=False, check_worker_health=False
    )
