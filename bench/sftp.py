"""SFTP benchmarks: Dropyard's hosted endpoint against OpenSSH's sshd on the same machine.

    .venv/bin/python -m bench.sftp all            # throughput, small, sessions
    .venv/bin/python -m bench.sftp throughput     # 1 GiB up/down, two ciphers, 3 runs each
    .venv/bin/python -m bench.sftp small          # 2,000 x 2 KiB in one sftp -b session
    .venv/bin/python -m bench.sftp sessions       # 200 concurrent sessions x 1 MiB

The machine is shared and noisy, so every Dropyard measurement is paired with the sshd one
taken right before it, and the page cache is flushed (`sync`) between measurements so
one server's writeback does not land in the other's time. Dropyard's times include its
whole commit path (fsync, SHA-256, atomic move, database row, receipt): `sftp` returns only
after the CLOSE is answered, and Dropyard answers it after the commit. sshd does no fsync.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from bench import machine
from bench.servers import (
    SftpTarget,
    client_key,
    dropyard,
    peak_rss_kib,
    scratch,
    sftp_batch,
    sshd,
)

MIB = 1024 * 1024
MB = 1_000_000
GCM = "aes128-gcm@openssh.com"
MEMORY = "/dev/shm"
CIPHERS: tuple[str | None, ...] = (GCM, None)  # None: the client's default (chacha20-poly1305)


def _cipher_label(cipher: str | None) -> str:
    return cipher or "default (chacha20-poly1305@openssh.com)"


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _settle() -> None:
    """Flush dirty pages so the next measurement does not pay for this one's writeback."""
    os.sync()


@dataclass
class Pair:
    """Repeated measurements of one quantity on both servers (higher is better)."""

    what: str
    sshd: list[float]
    dropyard: list[float]
    # Server CPU seconds of each run, and the work unit (GB, files) they are divided by.
    sshd_cpu: list[float]
    dropyard_cpu: list[float]
    units: float

    @property
    def ratio(self) -> float:
        return statistics.median(self.dropyard) / statistics.median(self.sshd)

    @property
    def best_ratio(self) -> float:
        """Best run against best run: less sensitive to a neighbour's load spike."""
        return max(self.dropyard) / max(self.sshd)


def _ratio_header(cpu_unit: str) -> list[str]:
    return [
        "Dropyard/sshd",
        "best/best",
        f"server CPU s/{cpu_unit}: sshd / Dropyard",
        "runs: sshd / Dropyard",
    ]


def _pair_cells(pair: Pair) -> list[str]:
    """Median of each side, the ratios, and every run."""
    return [
        _fmt(statistics.median(pair.sshd)),
        _fmt(statistics.median(pair.dropyard)),
        f"{pair.ratio:.2f}x",
        f"{pair.best_ratio:.2f}x",
        f"{statistics.median(pair.sshd_cpu) / pair.units:.2f} / "
        f"{statistics.median(pair.dropyard_cpu) / pair.units:.2f}",
        " ".join(_fmt(v, 0) for v in pair.sshd)
        + " / "
        + " ".join(_fmt(v, 0) for v in pair.dropyard),
    ]


def _measure_pairs(
    what: str,
    targets: tuple[SftpTarget, SftpTarget],
    runs: int,
    units: float,
    measure: Callable[[SftpTarget, int], float],
) -> Pair:
    """`runs` x (sshd, then Dropyard right after), with the server CPU each run used."""
    pair = Pair(what, [], [], [], [], units)
    for run in range(runs):
        for target, values, cpu in (
            (targets[0], pair.sshd, pair.sshd_cpu),
            (targets[1], pair.dropyard, pair.dropyard_cpu),
        ):
            before = target.cpu_seconds()
            values.append(measure(target, run))
            cpu.append(target.cpu_seconds() - before)
            _settle()
    print(f"  {what}: sshd {pair.sshd} dropyard {pair.dropyard}")
    return pair


# -- 1. one large file up and down ------------------------------------------------------


def _write_rate(folder: Path, size: int = 512 * MIB) -> float:
    """MB/s of plain buffered writes into `folder` (no fsync): what a server writing an
    upload there can reach at best right now."""
    path = folder / "rate.bin"
    block = os.urandom(MIB)
    started = time.perf_counter()
    with open(path, "wb", buffering=0) as handle:
        for _ in range(size // MIB):
            handle.write(block)
    seconds = time.perf_counter() - started
    path.unlink()
    _settle()
    return size / MB / seconds


def _big_file(work: Path, size: int) -> Path:
    path = work / "big.bin"
    block = os.urandom(MIB)
    with open(path, "wb") as handle:
        for _ in range(size // MIB):
            handle.write(block)
    return path


def throughput(size_mib: int, runs: int) -> str:
    size = size_mib * MIB
    results: list[Pair] = []
    logins: dict[str, list[float]] = {"sshd": [], "dropyard": []}
    load_before = _loadavg()
    with scratch() as work, tempfile.TemporaryDirectory(dir=MEMORY) as in_memory:
        # Downloads land in memory: the client's own disk is not what is measured.
        memory = Path(in_memory)
        ceiling = {"disk": _write_rate(work), "tmpfs": _write_rate(memory)}
        key = client_key(work)
        source = _big_file(work, size)
        with sshd(work, key) as ref, dropyard(work, key) as ours:
            for target in (ref, ours):
                target.publish("big.bin", source)
                for _ in range(3):
                    login = sftp_batch(target, key, "pwd\n", cwd=work)
                    logins[target.name].append(login.session)
            _settle()
            for cipher in CIPHERS:

                def upload(target: SftpTarget, run: int, cipher: str | None = cipher) -> float:
                    before = target.uploaded_bytes()
                    seconds = sftp_batch(
                        target,
                        key,
                        f"put big.bin {target.upload_dir}/up-{run}.bin\n",
                        cwd=work,
                        cipher=cipher,
                    ).commands
                    if target.uploaded_bytes() - before != size:
                        raise RuntimeError(f"{target.name}: upload stored a wrong size")
                    target.clear_uploads()
                    return size / MB / seconds

                def download(target: SftpTarget, run: int, cipher: str | None = cipher) -> float:
                    got = memory / "got.bin"
                    seconds = sftp_batch(
                        target,
                        key,
                        f"get {target.download_dir}/big.bin {got}\n",
                        cwd=work,
                        cipher=cipher,
                    ).commands
                    if got.stat().st_size != size:
                        raise RuntimeError(f"{target.name}: download has a wrong size")
                    got.unlink()
                    return size / MB / seconds

                for direction, measure in (("upload", upload), ("download", download)):
                    what = f"{direction}, {_cipher_label(cipher)}"
                    results.append(_measure_pairs(what, (ref, ours), runs, size / 1e9, measure))
    header = ["transfer", "sshd MB/s", "Dropyard MB/s", *_ratio_header("GB")]
    rows = [[pair.what, *_pair_cells(pair)] for pair in results]
    login_row = [
        "whole session for a `pwd` (login, logout), s",
        _fmt(statistics.median(logins["sshd"]), 3),
        _fmt(statistics.median(logins["dropyard"]), 3),
        "",
        "",
        "",
        "",
    ]
    print(machine.text_table(header, [*rows, login_row]))
    print(f"buffered writes: disk {ceiling['disk']:.0f} MB/s, tmpfs {ceiling['tmpfs']:.0f} MB/s")
    gcm = {p.what.split(",")[0]: p.ratio for p in results if GCM in p.what}
    verdict = ", ".join(
        f"{d} {gcm[d]:.2f}x ({'meets' if gcm[d] >= 1.0 else 'below'} the 1.0x target)"
        for d in ("upload", "download")
    )
    return (
        f"## SFTP: one {size_mib} MiB file up and down\n\n"
        f"{machine.environment()} · load average before/after {load_before} / {_loadavg()}\n\n"
        f"OpenSSH `sftp -b` (`Compression=no`; no `-B`/`-R`, so the client takes 255 KiB "
        f"requests, up to 64 in flight, from both servers' `limits@openssh.com`), one file "
        f"generated from 1 MiB of `os.urandom` repeated; median of {runs} runs, each Dropyard "
        f"run right after the sshd run it is compared with. MB = 10^6 bytes. The time is that "
        f"of the `put`/`get` alone, between two `!date` marks in the batch: logins differ a lot "
        f"(sshd forks and re-executes itself per connection; see the last row) and would "
        f"otherwise weigh on a few-second transfer. Downloads read a file that is in the "
        f"page cache on both servers and are written by the client to tmpfs; uploads are "
        f"written by the servers to the local disk, where plain buffered writes reached "
        f"{ceiling['disk']:.0f} MB/s when this ran (tmpfs: {ceiling['tmpfs']:.0f} MB/s), a "
        f"ceiling for both servers' uploads.\n\n"
        f"{machine.markdown_table(header, [*rows, login_row])}\n\n"
        f"Against the target (aes128-gcm): {verdict}.\n"
    )


# -- 2. many small files in one session -------------------------------------------------


def small_files(count: int, size: int, runs: int) -> str:
    load_before = _loadavg()
    with scratch() as work:
        key = client_key(work)
        local = work / "small"
        local.mkdir()
        names = [f"f{i:05d}.csv" for i in range(count)]
        for name in names:
            (local / name).write_bytes(os.urandom(size))
        with sshd(work, key) as ref, dropyard(work, key) as ours:

            def measure(target: SftpTarget, run: int) -> float:
                before = target.uploaded_count()
                commands = f"lcd {local}\ncd {target.upload_dir}\n" + "".join(
                    f"put {name} r{run}-{name}\n" for name in names
                )
                seconds = sftp_batch(target, key, commands, cwd=work, cipher=GCM).commands
                if target.uploaded_count() - before != count:
                    raise RuntimeError(f"{target.name}: not every small file was stored")
                target.clear_uploads()
                return count / seconds

            what = f"files/s ({count} x {size // 1024} KiB, one session)"
            pair = _measure_pairs(what, (ref, ours), runs, count / 1000, measure)
    header = ["", "sshd", "Dropyard", *_ratio_header("1000 files")]
    rows = [[pair.what, *_pair_cells(pair)]]
    print(machine.text_table(header, rows))
    meets = "meets" if pair.ratio >= 0.8 else "is below"
    return (
        f"## SFTP: {count} small files in one session\n\n"
        f"{machine.environment()} · load average before/after {load_before} / {_loadavg()}\n\n"
        f"One `sftp -b` session (aes128-gcm) doing `put` of each {size // 1024} KiB file in turn: "
        f"the client waits for each CLOSE, so this measures the per-file round trip "
        f"(stat, open, write, close) and, for Dropyard, the commit of every file (spool "
        f"fsync, move and directory fsync, database transaction, receipt written with "
        f"fsync, queue entry). Median of {runs} runs; the time is that of the `put` commands "
        f"alone (between two `!date` marks in the batch, login and logout left out).\n\n"
        f"{machine.markdown_table(header, rows)}\n\n"
        f"Against the target: {pair.ratio:.2f}x sshd's rate {meets} the 0.8x target.\n"
    )


# -- 3. many concurrent sessions --------------------------------------------------------


@dataclass
class Burst:
    seconds: float
    latencies: list[float]
    failures: list[str]


async def _one_session(
    port: int, login: str, key: asyncssh.SSHKey, path: str, payload: bytes
) -> float:
    started = time.perf_counter()
    async with (
        asyncssh.connect(
            "127.0.0.1",
            port,
            username=login,
            client_keys=[key],
            known_hosts=None,
            encryption_algs=[GCM],
            compression_algs=["none"],
            connect_timeout=120,
        ) as conn,
        conn.start_sftp_client() as sftp,
        sftp.open(path, "wb") as handle,
    ):
        await handle.write(payload)
    return time.perf_counter() - started


async def _burst(target: SftpTarget, key_path: Path, sessions: int, payload: bytes) -> Burst:
    key = asyncssh.read_private_key(str(key_path))
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(
            _one_session(
                target.port, target.login, key, f"{target.upload_dir}/s{i:04d}.bin", payload
            )
            for i in range(sessions)
        ),
        return_exceptions=True,
    )
    seconds = time.perf_counter() - started
    latencies = [o for o in outcomes if isinstance(o, float)]
    failures = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    return Burst(seconds, latencies, failures)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def concurrent_sessions(sessions: int, size: int) -> str:
    load_before = _loadavg()
    payload = os.urandom(size)
    bursts: dict[str, Burst] = {}
    stored: dict[str, int] = {}
    rss: tuple[int, int] = (0, 0)
    with scratch() as work:
        key = client_key(work)
        with sshd(work, key) as ref:
            bursts["sshd"] = asyncio.run(_burst(ref, key, sessions, payload))
            stored["sshd"] = ref.uploaded_count()
        _settle()
        # A fresh server, so that its VmHWM is this burst's peak and not an earlier test's.
        with dropyard(work, key) as ours:
            idle = peak_rss_kib(ours.pid)
            bursts["dropyard"] = asyncio.run(_burst(ours, key, sessions, payload))
            stored["dropyard"] = ours.uploaded_count()
            rss = peak_rss_kib(ours.pid)
    header = [
        "server",
        "sessions ok",
        "failures",
        "files stored",
        "total s",
        "session p50 s",
        "p95 s",
        "max s",
        "peak RSS MiB",
    ]
    rows = []
    for name, burst in (("sshd", bursts["sshd"]), ("Dropyard", bursts["dropyard"])):
        rows.append(
            [
                name,
                str(len(burst.latencies)),
                str(len(burst.failures)),
                str(stored[name.lower()]),
                _fmt(burst.seconds, 2),
                _fmt(_percentile(burst.latencies, 0.5), 2),
                _fmt(_percentile(burst.latencies, 0.95), 2),
                _fmt(max(burst.latencies, default=float("nan")), 2),
                (
                    f"{rss[1] / 1024:.0f} (idle {idle[0] / 1024:.0f})"
                    if name == "Dropyard"
                    else "n/a (a process per session)"
                ),
            ]
        )
    print(machine.text_table(header, rows))
    failures = bursts["dropyard"].failures
    sample = ""
    if failures:
        distinct = sorted(set(failures))[:5]
        sample = "\n\nDropyard failures (distinct, up to 5):\n\n" + "\n".join(
            f"- `{f[:200]}`" for f in distinct
        )
        print("\n".join(distinct))
    ref_failures = bursts["sshd"].failures
    if ref_failures:
        sample += "\n\nsshd failures (distinct, up to 5):\n\n" + "\n".join(
            f"- `{f[:200]}`" for f in sorted(set(ref_failures))[:5]
        )
    verdict = (
        "0 failures: meets the target"
        if not failures and stored["dropyard"] == sessions
        else f"{len(failures)} failures: misses the 0-failure target"
    )
    return (
        f"## SFTP: {sessions} concurrent sessions x {size // MIB} MiB\n\n"
        f"{machine.environment()} · load average before/after {load_before} / {_loadavg()}\n\n"
        f"{sessions} asyncssh client connections started at once from one process (ed25519 "
        f"key, aes128-gcm), each opening an SFTP session, writing one {size // MIB} MiB "
        f"file and closing. Total is until the last session closed; session times count "
        f"from connect to close. Peak RSS is `VmHWM` of the `dropyard serve` process, "
        f"started fresh for this burst (idle: `VmRSS` before it).\n\n"
        f"{machine.markdown_table(header, rows)}\n\n"
        f"Against the target: {verdict}.{sample}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sftp", description=__doc__.split("\n")[0]
    )
    parser.add_argument("which", choices=("all", "throughput", "small", "sessions"))
    parser.add_argument("--size-mib", type=int, default=1024, help="large file size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--file-bytes", type=int, default=2048)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--session-mib", type=int, default=1)
    parser.add_argument("--no-readme", action="store_true", help="print only")
    args = parser.parse_args()
    jobs: list[tuple[str, Callable[[], str]]] = []
    if args.which in ("all", "throughput"):
        jobs.append(("sftp-throughput", lambda: throughput(args.size_mib, args.runs)))
    if args.which in ("all", "small"):
        jobs.append(
            ("sftp-small-files", lambda: small_files(args.files, args.file_bytes, args.runs))
        )
    if args.which in ("all", "sessions"):
        jobs.append(
            ("sftp-sessions", lambda: concurrent_sessions(args.sessions, args.session_mib * MIB))
        )
    for section, job in jobs:
        started = time.monotonic()
        print(f"== {section}")
        body = job()
        print(f"({time.monotonic() - started:.0f} s)")
        if not args.no_readme:
            machine.update_readme(section, body)


if __name__ == "__main__":
    main()
