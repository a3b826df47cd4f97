"""Scale-out benchmarks: what S3 storage costs an SFTP node, and how imports scale with
the number of `dropyard worker` processes over PostgreSQL, Redis and S3.

    .venv/bin/python -m bench.scaleout all        # ~11 min
    .venv/bin/python -m bench.scaleout storage    # 2,000 small files and 1 GiB: local vs S3
    .venv/bin/python -m bench.scaleout workers    # conversions files: 1 vs 2 workers

The S3 endpoint is moto's server on loopback: an in-memory store written in Python, far
slower per request than a real object store and sharing the two cores with the node, so
its absolute numbers say little; each local-disk run is paired with the S3 run right
after it and the ratio of the pair is what the tables give. PostgreSQL, Redis and moto
are private processes on free ports (tests/scaleout/infra.py), never the shared ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from sqlalchemy import func, select, text
from tests.scaleout.clients import Brand, new_brand
from tests.scaleout.cluster import MASTER_KEY, settings_of
from tests.scaleout.infra import (
    MotoS3,
    Postgres,
    Worker,
    private_postgres,
    private_redis,
    private_s3,
    start_worker,
)
from tests.support import drop_box

from bench import machine
from bench.servers import Dropyard, client_key, cpu_of, dropyard, scratch, sftp_batch
from dropyard.accounts.actors import operator
from dropyard.app import Dropyard as App
from dropyard.app import build
from dropyard.files.models import File

MIB = 1024 * 1024
MB = 1_000_000
GCM = "aes128-gcm@openssh.com"
FINAL = ("processed", "partial", "failed", "duplicate", "dead")


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def _versions() -> str:
    redis = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    redis_version = next((w.split("=")[1] for w in redis if w.startswith("v=")), "?")
    return (
        f"moto {metadata.version('moto')}, boto3 {metadata.version('boto3')}, "
        f"Redis {redis_version}, huey {metadata.version('huey')}"
    )


# -- 1. one SFTP node, local disk vs S3 ----------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one quantity on one node (higher is better), with the
    node's CPU seconds and moto's for each run."""

    label: str
    values: list[float] = field(default_factory=list)
    node_cpu: list[float] = field(default_factory=list)
    store_cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def _clear_bucket(s3: MotoS3) -> None:
    client = s3.server.client()
    while keys := s3.keys():
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            client.delete_objects(Bucket=s3.bucket, Delete={"Objects": chunk})


def _measure(
    nodes: tuple[Dropyard, Dropyard],
    s3: MotoS3,
    runs: int,
    measure: Callable[[Dropyard, int], float],
) -> tuple[Series, Series]:
    """`runs` x (local node, then the S3 node right after), each followed by a clean-up."""
    assert s3.process is not None
    local, remote = Series("local disk"), Series("S3 (moto)")
    for run in range(runs):
        for node, series in ((nodes[0], local), (nodes[1], remote)):
            node_before, store_before = node.cpu_seconds(), cpu_of(s3.process.pid)
            series.values.append(measure(node, run))
            series.node_cpu.append(node.cpu_seconds() - node_before)
            series.store_cpu.append(cpu_of(s3.process.pid) - store_before)
            node.clear_uploads()
            _clear_bucket(s3)
            os.sync()
        print(f"  run {run + 1}: local {local.values[-1]:.1f}, S3 {remote.values[-1]:.1f}")
    return local, remote


@contextmanager
def _two_nodes(work: Path, key: Path, s3: MotoS3) -> Iterator[tuple[Dropyard, Dropyard]]:
    """Two `serve --roles sftp` on SQLite: one storing on local disk, one in the bucket."""
    # With the default 10 s, one 1 GiB upload to moto on the busy cores failed at CLOSE
    # (most likely a part or the completion answered late; that node's log was not kept).
    in_bucket = {**s3.env(), "DROPYARD_S3_MAX_ATTEMPTS": "3", "DROPYARD_S3_TIMEOUT_SECONDS": "60"}
    with (
        dropyard(work / "local", key) as on_disk,
        dropyard(work / "s3", key, extra_env=in_bucket) as on_s3,
    ):
        on_disk.name, on_s3.name = "local", "s3"
        yield on_disk, on_s3


def storage(files: int, file_bytes: int, size_mib: int, runs: int, small_runs: int) -> str:
    load_before = _loadavg()
    size = size_mib * MIB
    with scratch() as work, private_s3(work) as s3:
        key = client_key(work)
        local_dir = work / "small"
        local_dir.mkdir()
        names = [f"f{i:05d}.csv" for i in range(files)]
        for name in names:
            (local_dir / name).write_bytes(os.urandom(file_bytes))
        big = work / "big.bin"
        block = os.urandom(MIB)
        with open(big, "wb") as handle:
            for _ in range(size_mib):
                handle.write(block)
        with _two_nodes(work, key, s3) as nodes:

            def small(node: Dropyard, run: int) -> float:
                before = node.uploaded_count()
                commands = f"lcd {local_dir}\ncd {node.upload_dir}\n" + "".join(
                    f"put {name} r{run}-{name}\n" for name in names
                )
                seconds = sftp_batch(node, key, commands, cwd=work, cipher=GCM).commands
                if node.uploaded_count() - before != files:
                    raise RuntimeError(f"{node.name}: not every small file was stored")
                return files / seconds

            def large(node: Dropyard, run: int) -> float:
                before = node.uploaded_bytes()
                command = f"put {big.name} {node.upload_dir}/up-{run}.bin\n"
                seconds = sftp_batch(node, key, command, cwd=work, cipher=GCM).commands
                if node.uploaded_bytes() - before != size:
                    raise RuntimeError(f"{node.name}: the upload stored a wrong size")
                return size / MB / seconds

            print(f"== {files} small files")
            small_pair = _measure(nodes, s3, small_runs, small)
            print(f"== {size_mib} MiB")
            large_pair = _measure(nodes, s3, runs, large)
    header = [
        "upload",
        "local disk",
        "S3 (moto)",
        "S3/local",
        "node CPU: local / S3",
        "moto CPU",
        "runs: local / S3",
    ]
    rows = []
    for what, unit, per, (local, remote) in (
        (f"{files} x {file_bytes // 1024} KiB, files/s", "ms/file", files / 1000, small_pair),
        (f"one {size_mib} MiB file, MB/s", "s/GB", size / 1e9, large_pair),
    ):
        rows.append(
            [
                what,
                _fmt(local.median),
                _fmt(remote.median),
                f"{remote.median / local.median:.2f}x",
                f"{statistics.median(local.node_cpu) / per:.2f} / "
                f"{statistics.median(remote.node_cpu) / per:.2f} {unit}",
                f"{statistics.median(remote.store_cpu) / per:.2f} {unit}",
                " ".join(_fmt(v, 0) for v in local.values)
                + " / "
                + " ".join(_fmt(v, 0) for v in remote.values),
            ]
        )
    print(machine.text_table(header, rows))
    return (
        "### One SFTP node: local disk vs S3\n\n"
        f"Load average before/after {load_before} / {_loadavg()}.\n\n"
        f"Two `dropyard serve --roles sftp` on SQLite, alike but for `storage_backend`: "
        f"`local` (the data dir) and `s3` (a bucket on moto's server on loopback, boto3 "
        f"multipart in 16 MiB parts, 4 at a time; `s3_timeout_seconds` 60 instead of 10: "
        f"with 10, one 1 GiB upload to moto on the busy cores failed at CLOSE, most "
        f"likely a request answered late). One `sftp -b` session (aes128-gcm, "
        f"ed25519 key) per measurement, timed between two `!date` marks (login left out); "
        f"the client waits for each CLOSE, which Dropyard answers after the commit: for "
        f"`s3` that includes the PUT of the file (multipart from 16 MiB on) and of its "
        f"receipt, where `local` moves the spool file and fsyncs. {files} files of "
        f"{file_bytes // 1024} KiB: median of {small_runs} runs; one {size_mib} MiB file "
        f"(1 MiB of `os.urandom` repeated): median of {runs} runs; MB = 10^6 bytes. "
        f"Each local run is followed at once by its S3 run; the bucket is emptied between "
        f"runs. Node CPU is the `dropyard serve` process's; moto's own CPU is beside it "
        f"(it is the store here, on the same two cores).\n\n"
        f"{machine.markdown_table(header, rows)}\n"
    )


# -- 2. imports: 1 vs 2 workers -----------------------------------------------------------


@dataclass
class Batch:
    label: str
    processes: int
    threads: int
    files: int
    seconds: float
    worker_cpu: float
    pg_cpu: float
    store_cpu: float
    lock_waits: float  # share of polls that saw a backend waiting for a lock

    @property
    def per_minute(self) -> float:
        return self.files / self.seconds * 60


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its reaped children and its live children (the
    postmaster and its backends)."""
    total = cpu_of(pid, children=True)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else []:
        try:
            total += cpu_of(int(child))
        except (OSError, IndexError):
            continue  # exited meanwhile: counted with the reaped ones next time
    return total


def _postmaster(pg: Postgres) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


def _commit_files(
    app: App, brand: Brand, connections: list[int], *, count: int, rows: int, tag: str
) -> list[int]:
    """Files stored and recorded as an upload would be, without a queue message; file n
    goes to connection n mod len(connections)."""
    actor = operator("bench")
    ids = []
    for n in range(count):
        spool = app.files.open_spool()
        spool.write(brand.conversions(rows, prefix=f"{tag}-{n}"))
        view = app.files.commit(
            spool,
            connection_id=connections[n % len(connections)],
            name=f"{tag}-{n}.csv",
            source="bench",
            actor=actor,
        )
        ids.append(view.id)
    return ids


def _wait_final(app: App, ids: list[int], timeout: float) -> tuple[list[str], float]:
    """Wait for every file to finish: their states, and the share of the polls (every
    0.1 s) that saw a PostgreSQL backend waiting for a lock."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    polls = with_waits = 0
    deadline = time.monotonic() + timeout
    while True:
        with app.sessions() as session:
            done = session.scalar(
                select(func.count(File.id)).where(File.id.in_(ids), File.state.in_(FINAL))
            )
            polls += 1
            with_waits += bool(session.scalar(waiting))
        if done == len(ids):
            with app.sessions() as session:
                states = list(session.scalars(select(File.state).where(File.id.in_(ids))))
            return states, with_waits / polls
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {len(ids)} files finished in {timeout:.0f} s")
        time.sleep(0.1)


def _batch(
    app: App,
    brand: Brand,
    connections: list[int],
    work: Path,
    shared: dict[str, str],
    *,
    label: str,
    processes: int,
    threads: int,
    files: int,
    rows: int,
    tag: str,
    pg: Postgres,
    s3: MotoS3,
) -> Batch:
    ids = _commit_files(app, brand, connections, count=files, rows=rows, tag=tag)
    workers: list[Worker] = [
        start_worker(work / f"{tag}-w{n}", shared, threads=threads) for n in range(processes)
    ]
    assert s3.process is not None
    try:
        cpu_before = [w.cpu_seconds() for w in workers]
        pg_before, store_before = _tree_cpu(_postmaster(pg)), cpu_of(s3.process.pid)
        started = time.perf_counter()
        for file_id in ids:
            app.jobs.enqueue_file(file_id)
        states, lock_waits = _wait_final(app, ids, timeout=900)
        seconds = time.perf_counter() - started
        worker_cpu = sum(w.cpu_seconds() - b for w, b in zip(workers, cpu_before, strict=True))
        pg_cpu = _tree_cpu(_postmaster(pg)) - pg_before
        store_cpu = cpu_of(s3.process.pid) - store_before
    finally:
        for worker in workers:
            worker.stop()
    if set(states) != {"processed"}:
        raise RuntimeError(f"{label}: files ended {sorted(set(states))}, not all processed")
    batch = Batch(
        label, processes, threads, files, seconds, worker_cpu, pg_cpu, store_cpu, lock_waits
    )
    print(
        f"  {label}: {batch.per_minute:.1f} files/min ({seconds:.1f} s), CPU s: workers "
        f"{worker_cpu:.1f}, PostgreSQL {pg_cpu:.1f}, moto {store_cpu:.1f}; lock waits "
        f"{lock_waits:.0%}; load {_loadavg()}"
    )
    return batch


CONNECTIONS = 4
# (label, worker processes, threads each, files spread over CONNECTIONS connections or
# all on one)
CONFIGS = (
    ("1 worker", 1, 1, True),
    ("2 workers", 2, 1, True),
    ("1 worker, 2 threads", 1, 2, True),
    ("2 workers, one connection", 2, 1, False),
)


def workers(files: int, rows: int, reps: int) -> str:
    load_before = _loadavg()
    results: dict[str, list[Batch]] = {label: [] for label, *_ in CONFIGS}
    with (
        scratch() as work,
        private_postgres(durable=True) as pg,
        private_redis(work) as redis,
        private_s3(work) as s3,
    ):
        shared = {
            "DROPYARD_DATABASE_URL": pg.create_database("bench"),
            "DROPYARD_REDIS_URL": redis.url,
            "DROPYARD_QUEUE_NAME": "dropyard-bench",
            "DROPYARD_MASTER_KEY": MASTER_KEY,
            **s3.env(),
            "DROPYARD_S3_MAX_ATTEMPTS": "3",
        }
        app = build(settings_of(shared, work / "ops"))
        try:
            app.migrate()
            brand = new_brand(app)
            # More drop boxes of the same account, fed by the same campaign's conversions.
            spread = [brand.box.connection_id] + [
                drop_box(app, account_id=brand.box.account_id).connection_id
                for _ in range(CONNECTIONS - 1)
            ]
            app.files.set_notify(lambda _id: None)  # enqueued by hand, once workers run
            for rep in range(reps):
                for label, processes, threads, over_all in CONFIGS:
                    results[label].append(
                        _batch(
                            app,
                            brand,
                            spread if over_all else spread[:1],
                            work,
                            shared,
                            label=label,
                            processes=processes,
                            threads=threads,
                            files=files,
                            rows=rows,
                            tag=f"r{rep}p{processes}t{threads}c{int(over_all)}",
                            pg=pg,
                            s3=s3,
                        )
                    )
            pg_version = _server_version(app)
        finally:
            app.close()
    return _workers_section(results, files, rows, reps, load_before, pg_version)


def _server_version(app: App) -> str:
    with app.engine.connect() as con:
        return str(con.exec_driver_sql("SHOW server_version").scalar()).split()[0]


def _workers_section(
    results: dict[str, list[Batch]],
    files: int,
    rows: int,
    reps: int,
    load_before: str,
    pg_version: str,
) -> str:
    header = [
        "workers",
        "files/min",
        "rows/s",
        "vs 1 worker",
        "CPU s per file: workers / PostgreSQL / moto",
        "a backend waits for a lock",
        "runs, files/min",
    ]
    base = statistics.median(b.per_minute for b in results["1 worker"])
    rows_out = []
    for label, batches in results.items():
        rate = statistics.median(b.per_minute for b in batches)
        per_file = [
            statistics.median(getattr(b, part) / b.files for b in batches)
            for part in ("worker_cpu", "pg_cpu", "store_cpu")
        ]
        rows_out.append(
            [
                label,
                _fmt(rate),
                f"{rate * rows / 60:,.0f}",
                f"{rate / base:.2f}x",
                " / ".join(f"{v:.2f}" for v in per_file),
                f"{statistics.median(b.lock_waits for b in batches):.0%} of the time",
                " ".join(_fmt(b.per_minute) for b in batches),
            ]
        )
    print(machine.text_table(header, rows_out))
    single = results["1 worker"]
    per_worker = statistics.median(b.per_minute for b in single)  # the table's median
    wall = 60 / per_worker
    worker_cpu = statistics.median(b.worker_cpu / b.files for b in single)
    pg_cpu = statistics.median(b.pg_cpu / b.files for b in single)
    store_cpu = statistics.median(b.store_cpu / b.files for b in single)
    threads = statistics.median(b.per_minute for b in results["1 worker, 2 threads"]) / per_worker
    one_conn = (
        statistics.median(b.per_minute for b in results["2 workers, one connection"]) / per_worker
    )
    pg_core = 60 / pg_cpu if pg_cpu > 0 else float("inf")
    projection_header = ["worker processes", "projected files/min", "PostgreSQL cores busy"]
    projection = [
        [str(n), _fmt(n * per_worker), f"{n * per_worker * pg_cpu / 60:.1f}"]
        for n in (1, 2, 4, 8, 16)
    ]
    return (
        "### Imports: 1 worker vs 2 workers\n\n"
        f"Load average before/after {load_before} / {_loadavg()}. PostgreSQL {pg_version} "
        f"(private cluster, default durability: fsync on), Redis and moto on loopback.\n\n"
        f"Each batch: {files} conversions files of {rows:,} valid rows (unique order ids, "
        f"one campaign) committed through `files.commit` (stored in the bucket, a `files` "
        f"row each), spread over {CONNECTIONS} inbound connections of the account (the "
        f"last line: all on one), then N fresh `dropyard worker` processes started, and "
        f"the clock runs from enqueueing the {files} files on Redis until the last one is "
        f"`processed` (each import: read from S3, validate, insert in one transaction, "
        f"write the summary to S3). A worker process runs one import at a time "
        f"(`--workers 1`); `2 threads` is one process with two (the default `dropyard "
        f"worker`). {reps} repetition(s), in turn; CPU is that of the worker processes, "
        f"of the postmaster and its backends, and of moto, divided by the files; lock "
        f"waits: the share of 0.1 s polls of `pg_stat_activity` that found a backend "
        f"waiting for a lock (`wait_event_type = 'Lock'`).\n\n"
        f"{machine.markdown_table(header, rows_out)}\n\n"
        f"**One connection's files are imported one at a time**, whatever the number of "
        f"workers: an import takes the connection's row lock (`SELECT ... FOR UPDATE` in "
        f"`Processor._run`, `src/dropyard/files/processing.py`) for its whole "
        f"transaction, so that the same bytes are imported once per connection. A second "
        f"worker on the same connection's files waits for that lock (see the lock-wait "
        f"column; last line: {one_conn:.2f}x the one-worker rate; what overlaps is the "
        f"work outside that transaction); workers add throughput only across "
        f"connections.\n\n"
        f"**What two cores allow.** With one worker a file took {wall:.2f} s of wall "
        f"time (at the median rate); per file the worker process used {worker_cpu:.2f} s "
        f"of CPU, PostgreSQL {pg_cpu:.2f} s and moto {store_cpu:.2f} s, and for the rest "
        f"the worker waited (PostgreSQL, S3, Redis, or a core). Everything runs on the "
        f"same two cores, shared besides with other engineers' test runs, so a second "
        f"worker process gets only what the first one, the database, moto and the "
        f"neighbours leave: the 2-worker row says how much was left on this machine, not "
        f"how far Dropyard scales. Threads of one process share one interpreter lock: "
        f"they overlap a worker's waits ({threads:.2f}x here), not its Python work.\n\n"
        f"**Projected from the measured per-worker cost**, for workers that each have a "
        f"core of their own and a PostgreSQL that keeps up: one worker does "
        f"{per_worker:.1f} files/min of this size ({per_worker * rows / 60:,.0f} rows/s), "
        f"and N workers N times that, since workers share nothing but the database, the "
        f"queue and the bucket, as long as there are at least N connections with files "
        f"waiting (see above: one connection gets one worker's rate). The database is "
        f"the shared part: at {pg_cpu:.2f} s of PostgreSQL CPU per file one PostgreSQL "
        f"core serves ~{pg_core:.0f} files/min, "
        f"i.e. about {pg_core / per_worker:.1f} workers per PostgreSQL core, before "
        f"disk and locks are counted (the moto CPU says nothing about a real store).\n\n"
        f"{machine.markdown_table(projection_header, projection)}\n"
    )


# -- the section ------------------------------------------------------------------------


def section(parts: list[str]) -> str:
    return (
        "## Scale-out\n\n"
        f"{machine.environment()} · {_versions()}\n\n"
        "    .venv/bin/python -m bench.scaleout all        # ~11 min\n\n"
        "The node and workers of DESIGN §4 on one machine: an SFTP node storing on local "
        "disk or in S3, and `dropyard worker` processes over PostgreSQL, Redis and S3, "
        "all private processes on loopback (`tests/scaleout/infra.py`). The S3 endpoint is "
        "moto's server: an in-memory store written in Python, slower per request than a "
        "real object store and competing for the same two cores, so its absolute numbers "
        "say little; the ratios of runs taken side by side in the same run are what to "
        "read. The machine is shared with other engineers' test runs (see the load "
        "averages): expect 2x swings between runs.\n\n" + "\n".join(parts)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaleout", description=__doc__.split("\n")[0]
    )
    parser.add_argument("which", choices=("all", "storage", "workers"))
    parser.add_argument("--files", type=int, default=2000, help="small files")
    parser.add_argument("--file-bytes", type=int, default=2048)
    parser.add_argument("--size-mib", type=int, default=1024, help="large file size")
    parser.add_argument("--runs", type=int, default=3, help="runs of the large file")
    parser.add_argument("--small-runs", type=int, default=2, help="runs of the small files")
    parser.add_argument("--imports", type=int, default=24, help="conversions files a batch")
    parser.add_argument("--rows", type=int, default=5000, help="rows a conversions file")
    parser.add_argument("--reps", type=int, default=2, help="repetitions of each batch")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args()
    started = time.monotonic()
    parts = []
    if args.which in ("all", "storage"):
        parts.append(
            storage(args.files, args.file_bytes, args.size_mib, args.runs, args.small_runs)
        )
    if args.which in ("all", "workers"):
        parts.append(workers(args.imports, args.rows, args.reps))
    body = section(parts)
    print(body)
    print(f"({time.monotonic() - started:.0f} s)")
    if not args.no_readme:
        machine.update_readme("scaleout", body)


if __name__ == "__main__":
    main()
