"""Prometheus metrics: every metric Dropyard exposes, defined here and nowhere else.

One `Metrics` per process, on its own registry (so that tests can build many apps in one
process). Counters are bumped where the events happen (logins and transfers in the
gateway, jobs in the queue); gauges about files and the queue are read from the database
and Huey when Prometheus scrapes, so every node reports the same truth.
"""

from __future__ import annotations

import hmac
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from dropyard.db.engine import SessionFactory
from dropyard.files.models import INBOUND_STATES, OUTBOUND_STATES, File

log = logging.getLogger(__name__)

LoginOutcome = Literal["success", "failure", "refused", "banned", "unavailable"]
Direction = Literal["upload", "download"]
TransferOutcome = Literal["ok", "failed"]

# Jobs run from well under a second (a small file) to many minutes (a large import).
_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))


class Metrics:
    """The metrics of one process and the registry they are exposed from."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.logins = Counter(
            "dropyard_logins",
            "Logins to the hosted endpoints, by protocol and outcome "
            "(success, failure, refused: right password but TLS required, banned).",
            ["protocol", "outcome"],
            registry=r,
        )
        self.transfers = Counter(
            "dropyard_transfers",
            "Files transferred through the hosted endpoints: committed uploads and downloads "
            "read to the end (ok), uploads cut off or refused (failed).",
            ["protocol", "direction", "outcome"],
            registry=r,
        )
        self.transfer_bytes = Counter(
            "dropyard_transfer_bytes",
            "Bytes of the files counted as ok in dropyard_transfers_total.",
            ["protocol", "direction"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "dropyard_job_seconds",
            "How long background jobs ran, by task.",
            ["task"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.job_failures = Counter(
            "dropyard_job_failures",
            "Background jobs that failed: raised, gave a file back after a transient error, "
            "or ended a run as failed. A file rejected for its content is not a job failure.",
            ["task"],
            registry=r,
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)

    def watch(self, *, sessions: SessionFactory, queue_depth: Callable[[], int]) -> None:
        """Read the files and queue gauges from these, at scrape time."""
        self.registry.register(StateCollector(sessions, queue_depth))

    # -- events -------------------------------------------------------------------------

    def login(self, protocol: str, outcome: LoginOutcome) -> None:
        self.logins.labels(protocol=protocol, outcome=outcome).inc()

    def transfer(
        self, protocol: str, direction: Direction, outcome: TransferOutcome, size: int = 0
    ) -> None:
        self.transfers.labels(protocol=protocol, direction=direction, outcome=outcome).inc()
        if outcome == "ok" and size > 0:
            self.transfer_bytes.labels(protocol=protocol, direction=direction).inc(size)

    @contextmanager
    def job(self, task: str) -> Iterator[None]:
        """Time a job; one that raises counts as failed (and still raises)."""
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self.job_failed(task)
            raise
        finally:
            self.job_seconds.labels(task=task).observe(time.perf_counter() - started)

    def job_failed(self, task: str) -> None:
        self.job_failures.labels(task=task).inc()

    # -- exposition ---------------------------------------------------------------------

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST


class StateCollector(Collector):
    """`dropyard_files` and `dropyard_queue_depth`, computed when Prometheus scrapes.

    A source that does not answer leaves its metric out of that scrape (and says so in
    the log) rather than failing the whole scrape: /readyz is where outages show.
    """

    def __init__(self, sessions: SessionFactory, queue_depth: Callable[[], int]) -> None:
        self._sessions = sessions
        self._queue_depth = queue_depth

    def describe(self) -> Iterable[Metric]:
        # Without this the registry would collect (hit the database) just to learn names.
        return [_files_family(), _queue_family()]

    def collect(self) -> Iterable[Metric]:
        try:
            files = _files_family()
            with self._sessions() as session:
                counts = {
                    (direction, state): count
                    for direction, state, count in session.execute(
                        select(File.direction, File.state, func.count()).group_by(
                            File.direction, File.state
                        )
                    )
                }
            for direction, states in (("inbound", INBOUND_STATES), ("outbound", OUTBOUND_STATES)):
                for state in states:
                    files.add_metric([direction, state], counts.pop((direction, state), 0))
            for (direction, state), count in counts.items():
                files.add_metric([direction, state], count)
            yield files
        except Exception as exc:
            log.warning("metrics: files by state not read: %s", type(exc).__name__)
        try:
            queue = _queue_family()
            queue.add_metric([], self._queue_depth())
            yield queue
        except Exception as exc:
            log.warning("metrics: queue depth not read: %s", type(exc).__name__)


def _files_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "dropyard_files",
        "Files in the database, by direction and state.",
        labels=["direction", "state"],
    )


def _queue_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("dropyard_queue_depth", "Jobs waiting in the queue.")


def token_matches(header: str | None, token: str) -> bool:
    """An `Authorization: Bearer <token>` header carrying `token` (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    given_bytes, token_bytes = given.strip().encode(), token.encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token_bytes)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


class MetricsServer:
    """/metrics on its own port, for nodes without the web role; a bearer token when set.

    prometheus_client's own server, with the token check in front of its WSGI app.
    """

    def __init__(self, metrics: Metrics, *, token: str | None = None) -> None:
        exposition = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if token and not token_matches(environ.get("HTTP_AUTHORIZATION"), token):
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
                )
                return [b"a bearer token is required\n"]
            result: Iterable[bytes] = exposition(environ, start_response)
            return result

        self._app = app
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); returns the port."""

        class _Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self._server = make_server(host, port, self._app, _Server, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dropyard-metrics", daemon=True
        )
        self._thread.start()
        return int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
