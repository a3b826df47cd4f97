"""Where Dropyard's time goes during an SFTP upload, download or run of small files.

    .venv/bin/python -m bench.profile            # all three scenarios
    .venv/bin/python -m bench.profile small      # or: upload | download

Each scenario runs once against a `dropyard serve` sampled by py-spy (`pip install
py-spy`; non-blocking, so the server is not paused), and once more against a server
whose fsync is a no-op (`LD_PRELOAD` of Debian's libeatmydata, when installed), which
shows how much of the time is waiting for the disk. The tables give, per thread, how busy
it was (samples while not sleeping / samples possible), and the functions that held the
most samples: the event loop thread (`MainThread`) carries SSH and SFTP; the commit of
each upload runs in the default executor's threads (`asyncio_N`).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import machine
from bench.servers import Dropyard, client_key, dropyard, scratch, sftp_batch

MIB = 1024 * 1024
GCM = "aes128-gcm@openssh.com"
RATE = 250
EATMYDATA = Path("/usr/lib/x86_64-linux-gnu/libeatmydata.so")
PY_SPY = Path(sys.executable).with_name("py-spy")
DOWNLOAD_TO = Path("/dev/shm") / f"dropyard-bench-{os.getpid()}.bin"
# Frames from these places are the ones worth naming; the rest is plumbing.
INTERESTING = ("dropyard/", "asyncssh/", "sqlalchemy/", "cryptography/")
# ... except the frames every sample of a thread passes through.
PLUMBING = ("dropyard/cli/", "dropyard/__main__", "_sftp_handler (", "SFTPServerHandler.run (")


@dataclass(frozen=True)
class Scenario:
    name: str
    units: float
    unit: str
    prepare: Callable[[Path], None]
    commands: Callable[[Dropyard, Path], str]


def _big(work: Path, size_mib: int) -> None:
    block = os.urandom(MIB)
    with open(work / "big.bin", "wb") as handle:
        for _ in range(size_mib):
            handle.write(block)


def _small(work: Path, count: int) -> None:
    (work / "small").mkdir()
    for i in range(count):
        (work / "small" / f"f{i:05d}.csv").write_bytes(os.urandom(2048))


def scenarios(size_mib: int, files: int) -> dict[str, Scenario]:
    return {
        "upload": Scenario(
            "upload",
            size_mib * MIB / 1e6,
            "MB",
            lambda work: _big(work, size_mib),
            lambda target, work: f"put big.bin {target.upload_dir}/big.bin\n",
        ),
        "download": Scenario(
            "download",
            size_mib * MIB / 1e6,
            "MB",
            lambda work: _big(work, size_mib),
            # Into memory: the client's own disk is not what is measured.
            lambda target, work: f"get {target.download_dir}/big.bin {DOWNLOAD_TO}\n",
        ),
        "small": Scenario(
            "small",
            files,
            "file",
            lambda work: _small(work, files),
            lambda target, work: (
                f"lcd {work / 'small'}\ncd {target.upload_dir}\n"
                + "".join(f"put f{i:05d}.csv\n" for i in range(files))
            ),
        ),
    }


@dataclass
class Run:
    seconds: float
    user: float
    system: float
    samples: list[tuple[str, list[str], int]]


def _cpu_split(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _run_once(scenario: Scenario, work: Path, *, spy: bool, no_fsync: bool) -> Run:
    key = client_key(work)
    env = {"LD_PRELOAD": str(EATMYDATA)} if no_fsync else {}
    with dropyard(work, key, extra_env=env) as target:
        if (work / "big.bin").exists():
            target.publish("big.bin", work / "big.bin")
        sftp_batch(target, key, "pwd\n", cwd=work)  # first login: imports, caches
        out = work / "spy.txt"
        spy_process = None
        if spy:
            spy_process = subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(target.pid),
                    "--rate",
                    str(RATE),
                    "--format",
                    "raw",
                    "--threads",
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        user0, sys0 = _cpu_split(target.pid)
        run = sftp_batch(target, key, scenario.commands(target, work), cwd=work, cipher=GCM)
        user1, sys1 = _cpu_split(target.pid)
        samples: list[tuple[str, list[str], int]] = []
        if spy_process is not None:
            spy_process.send_signal(signal.SIGINT)
            spy_process.wait(30)
            samples = _read_samples(out)
    DOWNLOAD_TO.unlink(missing_ok=True)
    shutil.rmtree(work / "dropyard", ignore_errors=True)
    return Run(run.commands, user1 - user0, sys1 - sys0, samples)


def _read_samples(path: Path) -> list[tuple[str, list[str], int]]:
    found = []
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[-1].strip()
        # Executor threads are asyncio_0, asyncio_1, ...: one row for all of them.
        thread = "asyncio_N (executor)" if thread.startswith("asyncio_") else thread
        found.append((thread, frames[1:], int(count)))
    return found


def _short(frame: str) -> str:
    """`Spool.finish (dropyard/files/spool.py:83)` -> `Spool.finish (files/spool.py)`."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0].removeprefix("dropyard/")
    return f"{name} ({where})" if where else name


def _summary(scenario: Scenario, run: Run, free: Run | None) -> tuple[str, str]:
    per = run.seconds / scenario.units
    # CPU seconds per 1000 units: per GB for transfers (units are MB), ms per file.
    user, system = (value / scenario.units * 1000 for value in (run.user, run.system))
    if scenario.unit == "MB":
        speed = f"{scenario.units / run.seconds:.1f} MB/s"
        free_speed = f"{scenario.units / free.seconds:.1f} MB/s" if free else ""
        cpu = f"{user + system:.2f} s/GB (user {user:.2f}, system {system:.2f})"
    else:
        speed = f"{1 / per:.1f} files/s ({per * 1000:.1f} ms/file)"
        free_speed = f"{scenario.units / free.seconds:.1f} files/s" if free else ""
        cpu = f"{user + system:.1f} ms/file (user {user:.1f}, system {system:.1f})"
    head = (
        f"**{scenario.name}**: {speed}; "
        + (f"with fsync a no-op: {free_speed}; " if free else "")
        + f"server CPU {cpu}; {len(run.samples)} distinct stacks sampled at {RATE} Hz."
    )
    total_possible = run.seconds * RATE
    per_thread: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[tuple[str, str]] = collections.Counter()
    inclusive: collections.Counter[tuple[str, str]] = collections.Counter()
    for thread, frames, count in run.samples:
        per_thread[thread] += count
        named = [
            f
            for f in frames
            if any(mark in f for mark in INTERESTING) and not any(p in f for p in PLUMBING)
        ]
        if frames:
            self_time[(thread, _short(frames[-1]))] += count
        for frame in {_short(f) for f in named}:
            inclusive[(thread, frame)] += count
    threads = [
        [thread, f"{count / total_possible * 100:.0f}%"]
        for thread, count in per_thread.most_common()
        if count / total_possible >= 0.01
    ]
    rows: list[list[str]] = []
    for (thread, frame), count in self_time.most_common(8):
        rows.append(["self", thread, frame, f"{count / total_possible * 100:.1f}%"])
    for (thread, frame), count in inclusive.most_common(40):
        if any(r[2] == frame and r[1] == thread for r in rows):
            continue
        rows.append(["incl.", thread, frame, f"{count / total_possible * 100:.1f}%"])
        if len(rows) >= 24:
            break
    text = "\n\n".join(
        [
            head,
            machine.markdown_table(["thread", "busy"], threads),
            machine.markdown_table(["", "thread", "function", "share of wall time"], rows),
        ]
    )
    plain = "\n".join(
        [
            head,
            machine.text_table(["thread", "busy"], threads),
            machine.text_table(["", "thread", "function", "share"], rows),
        ]
    )
    return text, plain


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument(
        "which", nargs="?", default="all", choices=("all", "upload", "download", "small")
    )
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    if not PY_SPY.exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    chosen = scenarios(args.size_mib, args.files)
    names = list(chosen) if args.which == "all" else [args.which]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    parts = [
        "## Where the time goes (profiles)",
        f"{machine.environment()} · load average {load}",
        "Produced by `python -m bench.profile`: py-spy samples of the `dropyard serve` "
        f"process at {RATE} Hz while one aes128-gcm `sftp -b` session runs the scenario. "
        "`busy` is the share of the wall time a thread was not sleeping (waiting in fsync "
        "counts as busy); `self` rows are where samples ended, `incl.` rows the Dropyard, "
        "asyncssh and SQLAlchemy functions they passed through. For uploads, the headline "
        "also gives the rate of a second run with fsync made a no-op (libeatmydata), to "
        "show the disk's share.",
    ]
    for name in names:
        scenario = chosen[name]
        with scratch() as work:
            scenario.prepare(work)
            print(f"== {name}")
            run = _run_once(scenario, work, spy=True, no_fsync=False)
            # Downloads do not fsync: a second run would only show the machine's noise.
            fsyncs = name != "download" and EATMYDATA.exists()
            free = _run_once(scenario, work, spy=False, no_fsync=True) if fsyncs else None
        text, plain = _summary(scenario, run, free)
        print(plain)
        parts.append(text)
    if not args.no_readme:
        machine.update_readme("profile", "\n\n".join(parts))


if __name__ == "__main__":
    main()
