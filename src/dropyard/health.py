"""Readiness: can this process do its work right now? Database, storage and queue.

Each probe runs in a thread with a short timeout, so a hung dependency makes the answer
"not ready" instead of a hung load-balancer check. The answer names the check that failed
and a safe reason (an error class or a timeout, never a message that could carry a host,
a path or a credential); the full error goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

if TYPE_CHECKING:
    from dropyard.app import Dropyard

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: Mapping[str, str]  # check name: "ok" or "failed: <safe reason>"


def probe_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def probe_storage(storage: object) -> None:
    check = getattr(storage, "check", None)
    if callable(check):
        check()


def probe_queue(pending_count: Callable[[], int]) -> None:
    pending_count()


def safe_reason(exc: BaseException) -> str:
    """The error's class (the driver's own, under SQLAlchemy's wrapper): says what kind of
    failure without anything the message may hold."""
    original = getattr(exc, "orig", None)
    return type(original if isinstance(original, BaseException) else exc).__name__


async def _probe(name: str, probe: Callable[[], None], timeout: float) -> str:
    try:
        await asyncio.wait_for(asyncio.to_thread(probe), timeout)
    except TimeoutError:
        log.warning("readiness: %s gave no answer within %gs", name, timeout)
        return f"failed: no answer within {timeout:g}s"
    except Exception as exc:
        log.warning("readiness: %s failed: %s", name, str(exc).splitlines()[0] if str(exc) else "")
        return f"failed: {safe_reason(exc)}"
    return "ok"


async def readiness(app: Dropyard, *, timeout: float = PROBE_TIMEOUT) -> Readiness:
    """Probe the database, storage and queue at once; ready when all answer."""
    probes: dict[str, Callable[[], None]] = {
        "database": lambda: probe_database(app.engine),
        "storage": lambda: probe_storage(app.storage),
        "queue": lambda: probe_queue(app.jobs.huey.pending_count),
    }
    results = await asyncio.gather(*(_probe(n, p, timeout) for n, p in probes.items()))
    checks = dict(zip(probes, results, strict=True))
    return Readiness(ready=all(r == "ok" for r in results), checks=checks)
