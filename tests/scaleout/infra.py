"""Private backing services for a scaled-out Dropyard, each a real process on loopback that
a test may stop and start again on the same port: PostgreSQL (initdb + pg_ctl in a temp
dir), Redis (`redis-server --save ''`) and moto's S3 server. Plus `dropyard worker`
processes. No pytest here: bench/scaleout.py starts the same things.

The shared PostgreSQL on 5432 and Redis on 6379 are never touched: these get stopped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.s3server import S3Server, free_port


class Missing(RuntimeError):
    """A system binary the harness needs is not installed."""


def _wait(check: object, what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            detail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s\n{detail}")
        time.sleep(0.1)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- PostgreSQL ---------------------------------------------------------------------------


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL server binaries (/usr/lib/postgresql/<v>/bin)."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")),
        key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0),
    )
    if not found:
        raise Missing("PostgreSQL server binaries (apt-get install postgresql) are missing")
    return found[-1]


@dataclass
class Postgres:
    """A private PostgreSQL cluster: `initdb` in a temp dir, `pg_ctl` on a free port.

    initdb and postgres refuse to run as root: as root, they run as the `postgres` user
    (created by the Debian package), in a temp dir that user owns."""

    root: Path
    port: int
    durable: bool = False  # fsync on/off: tests do not need durability against power loss
    bin_dir: Path = field(default_factory=postgres_bin)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _as_owner(self, *args: str) -> list[str]:
        if os.geteuid() != 0:
            return list(args)
        return ["runuser", "-u", "postgres", "--", *args]

    def _run(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            self._as_owner(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        _wait(lambda: _listening(self.port), "PostgreSQL listening", 30, self.log)

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: clients are disconnected, nothing is lost."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> str:
        createdb = str(self.bin_dir / "createdb")
        self._run(createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)


@contextlib.contextmanager
def private_postgres(*, durable: bool = False) -> Iterator[Postgres]:
    if shutil.which("runuser") is None and os.geteuid() == 0:
        raise Missing("runuser (util-linux) is missing")
    root = Path(tempfile.mkdtemp(prefix="dropyard-pg-"))
    pg = Postgres(root, free_port(), durable=durable)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        if pg.running():
            with contextlib.suppress(Exception):
                pg.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- Redis --------------------------------------------------------------------------------


@dataclass
class Redis:
    """A private `redis-server` without persistence: a stop loses the queue, as a crash
    of an unpersisted Redis would."""

    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Missing("redis-server (apt-get install redis-server) is missing")
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.root)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _wait(lambda: _listening(self.port), "redis-server listening", 20, self.log)

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process)
            self.process = None


@contextlib.contextmanager
def private_redis(root: Path) -> Iterator[Redis]:
    redis = Redis(root, free_port())
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


# -- S3 (moto) ----------------------------------------------------------------------------


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@dataclass
class MotoS3:
    """moto's S3 server (an in-memory Python server) on a fixed port, with one bucket.

    A stop loses every object: after `start()` again the bucket exists but is empty."""

    root: Path
    port: int
    bucket: str = "dropyard-scaleout"
    process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> S3Server:
        return S3Server(f"http://127.0.0.1:{self.port}")

    @property
    def log(self) -> Path:
        return self.root / "moto.log"

    def launch(self) -> None:
        """Start the process; `wait_ready` before use (it takes seconds to import)."""
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self) -> None:
        _wait(lambda: _answers(self.server.endpoint_url), "moto answering", 60, self.log)
        self.server.client().create_bucket(Bucket=self.bucket)

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def stop(self) -> None:
        if self.process is not None:
            _stop_process(self.process)
            self.process = None

    def keys(self, prefix: str = "") -> list[str]:
        listed = self.server.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def env(self) -> dict[str, str]:
        """DROPYARD_* settings of a node that stores its files in this bucket."""
        return {
            f"DROPYARD_{k.upper()}": str(v) for k, v in self.server.settings(self.bucket).items()
        }


@contextlib.contextmanager
def private_s3(root: Path, *, ready: bool = True) -> Iterator[MotoS3]:
    """moto on a free port; with `ready=False` the caller does other things meanwhile
    and calls `wait_ready()` itself."""
    s3 = MotoS3(root, free_port())
    s3.launch()
    try:
        if ready:
            s3.wait_ready()
        yield s3
    finally:
        s3.stop()


# -- `dropyard worker` --------------------------------------------------------------------


@dataclass
class Worker:
    """A `dropyard worker` process (Huey consumer on the shared queue)."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a machine that dies would do."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        _stop_process(self.process, timeout=20)


def node_env(data_dir: Path, shared: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    env.update({"DROPYARD_DATA_DIR": str(data_dir), **shared})
    return env


def start_worker(data_dir: Path, shared: Mapping[str, str], *, threads: int = 2) -> Worker:
    """Start a worker and wait until it runs (it logs where its metrics are served)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "worker.log"
    # Its INFO line "metrics on ..." says it runs: the level is INFO whatever `shared` says.
    env = node_env(data_dir, {**shared, "DROPYARD_METRICS_PORT": "0", "DROPYARD_LOG_LEVEL": "INFO"})
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dropyard", "worker", "--workers", str(threads)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    worker = Worker(process, log_path)

    def started() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"dropyard worker exited:\n{worker.log()[-3000:]}")
        return "metrics on" in worker.log()

    _wait(started, "dropyard worker starting", 60, log_path)
    return worker
