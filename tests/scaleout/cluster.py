"""Two `dropyard serve` nodes and `dropyard worker` processes over one private PostgreSQL,
Redis and S3 store: the scaled-out layout of DESIGN §4, on loopback.

Every process gets the same settings (database, queue, bucket, master key) and a data dir
and ports of its own; node ports are read from `<data-dir>/run/ports.json`.
"""

from __future__ import annotations

import base64
import contextlib
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dropyard.app import Dropyard, build
from dropyard.settings import Settings
from tests.scaleout.infra import (
    MotoS3,
    Postgres,
    Redis,
    Worker,
    private_postgres,
    private_redis,
    private_s3,
    start_worker,
)
from tests.support import RunningServer, start_server

NODE_ROLES = "web,sftp,ftp,smtp,scheduler"
MASTER_KEY = base64.b64encode(bytes(range(7, 39))).decode()
# Short leases and loops: a dead worker's file and a dead leader's duties are taken over
# in seconds, not minutes, so the tests can wait for it.
FAST = {
    "DROPYARD_LEASE_SECONDS": "3",
    "DROPYARD_SWEEP_SECONDS": "1",
    "DROPYARD_SCHEDULER_LOOP_SECONDS": "1",
    "DROPYARD_SCHEDULER_LEASE_SECONDS": "4",
    "DROPYARD_S3_TIMEOUT_SECONDS": "3",
    "DROPYARD_S3_MAX_ATTEMPTS": "2",
}


@dataclass
class Cluster:
    base: Path
    pg: Postgres
    redis: Redis
    s3: MotoS3
    database_url: str
    shared: dict[str, str]
    ops: Dropyard  # the operator's view: provisioning and queries, through the services
    a: RunningServer
    b: RunningServer
    workers: list[Worker] = field(default_factory=list)
    _generation: int = 0

    def restart_a(self) -> RunningServer:
        """A new node A process on A's data dir (after it was killed)."""
        if self.a.process.poll() is None:
            self.a.stop()
        else:
            self.a.app.close()
        self.a = start_node(self.base / "a", self.shared)
        return self.a

    def add_worker(self) -> Worker:
        self._generation += 1
        worker = start_worker(self.base / f"worker-{self._generation}", self.shared)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        # Every process is told at once, then waited for: their grace periods overlap.
        for process in [w.process for w in self.workers] + [self.a.process, self.b.process]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop()
        for node in (self.a, self.b):
            with contextlib.suppress(Exception):
                node.stop()
        self.ops.close()


def start_node(data_dir: Path, shared: dict[str, str]) -> RunningServer:
    url = shared["DROPYARD_DATABASE_URL"]
    return start_server(data_dir, url, extra_env=shared, roles=NODE_ROLES)


def settings_of(shared: dict[str, str], data_dir: Path) -> Settings:
    values = {k.removeprefix("DROPYARD_").lower(): v for k, v in shared.items()}
    return Settings.model_validate({**values, "data_dir": data_dir})


@contextlib.contextmanager
def running_cluster(base: Path, *, workers: int = 2) -> Iterator[Cluster]:
    """Start everything; node A first (it creates the schema), then B and the workers."""
    with (
        private_s3(base, ready=False) as s3,
        private_postgres() as pg,
        private_redis(base) as redis,
    ):
        url = pg.create_database("dropyard")
        s3.wait_ready()
        shared = {
            "DROPYARD_DATABASE_URL": url,
            "DROPYARD_REDIS_URL": redis.url,
            "DROPYARD_QUEUE_NAME": "dropyard-scaleout",
            "DROPYARD_MASTER_KEY": MASTER_KEY,
            "DROPYARD_PUBLIC_HOST": "127.0.0.1",
            **s3.env(),
            **FAST,
        }
        a = start_node(base / "a", shared)
        cluster: Cluster | None = None
        try:
            with ThreadPoolExecutor(max_workers=1 + workers) as pool:
                b_started = pool.submit(start_node, base / "b", shared)
                started = [
                    pool.submit(start_worker, base / f"worker-{n + 1}", shared)
                    for n in range(workers)
                ]
                b = b_started.result()
                cluster = Cluster(
                    base=base,
                    pg=pg,
                    redis=redis,
                    s3=s3,
                    database_url=url,
                    shared=shared,
                    ops=build(settings_of(shared, base / "ops")),
                    a=a,
                    b=b,
                    workers=[w.result() for w in started],
                    _generation=workers,
                )
            yield cluster
        finally:
            if cluster is not None:
                cluster.stop()
            else:
                a.stop()
