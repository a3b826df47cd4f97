"""Jobs on Huey: one queue for the whole installation, SQLite by default, Redis to scale.

The database is the source of truth: a `received` file IS the job, and the queue entry is
only the nudge that gets it done soon. The periodic sweep re-enqueues whatever a lost
message, a stopped Redis or a killed worker left behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer

from dropyard.files.processing import Processor
from dropyard.settings import Settings

log = logging.getLogger(__name__)


def make_huey(settings: Settings) -> Huey:
    if settings.redis_url:
        return RedisHuey("dropyard", url=settings.redis_url, utc=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("dropyard", filename=str(settings.data_dir / "jobs.db"), utc=True)


class Jobs:
    """The tasks Dropyard runs in the background, registered on one Huey."""

    def __init__(self, huey: Huey, processor: Processor) -> None:
        self.huey = huey
        self._processor = processor
        self._process = huey.task(name="process_file")(self._process_file)
        self._sweep = huey.periodic_task(crontab(minute="*"), name="sweep")(self.sweep)
        self._extra: dict[str, Callable[..., Any]] = {}

    def task(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """Register another task (the scheduler's runs, deliveries) on the same queue."""
        registered: Callable[..., Any] = self.huey.task(name=name)(func)
        self._extra[name] = registered
        return registered

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


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A consumer inside `dropyard serve`: the server owns the process's signals."""

    def _set_signal_handlers(self) -> None:
        return None


def embedded_consumer(huey: Huey, *, workers: int) -> EmbeddedConsumer:
    return EmbeddedConsumer(
        huey, workers=workers, worker_type="thread", periodic=True, check_worker_health=False
    )
