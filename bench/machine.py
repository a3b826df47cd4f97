"""What a result was measured on, and the one place that rewrites bench/README.md.

Each benchmark owns one section of the README between two HTML comment markers, so the
benchmarks can run in any order and each rewrite leaves the others' sections alone.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

README = Path(__file__).with_name("README.md")
_HEADER = """# Dropyard hosted-endpoint benchmarks

Not part of the test suite. Each script starts a real `dropyard serve` (SQLite and local
disk, the embedded default; `--roles sftp` or `--roles ftp`, so queue entries are written
by each commit but no worker consumes them during a measurement) and, where there is one,
a reference server on 127.0.0.1, drives both with the same real client, prints a table and
rewrites its own section below. Run from the repository root:

    .venv/bin/python -m bench.sftp all          # ~6-9 min; or: throughput | small | sessions
    .venv/bin/python -m bench.ftps              # ~1 min
    .venv/bin/python -m bench.profile           # ~2 min; needs `.venv/bin/pip install py-spy`

The reference for SFTP is OpenSSH's own `sshd` (`internal-sftp`, chrooted) with its own
host key; both servers are logged into with the same ed25519 key (Dropyard: a hosted
public-key credential), so the login cost is comparable. sshd needs `/run/sshd`, which the
script creates when missing. Scratch files live under `bench/out/` (git-ignored; sshd's
chroot cannot sit under the world-writable /tmp) and are removed at the end.
`bench.profile` uses Debian's `libeatmydata` (`apt-get install eatmydata`) when present.

The machine is shared: other engineers' test runs load its two cores while these run, so
single runs swing by 2x. Each Dropyard run is paired with the sshd run just before it, the
tables show every run, and the server CPU per unit of work (less sensitive to the load
than wall time) is given beside the rates.
"""
SECTIONS = ("sftp-throughput", "sftp-small-files", "sftp-sessions", "ftps", "profile")


def _run(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (done.stdout + done.stderr).strip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def memory_gib() -> str:
    """`free -g`'s Mem line, e.g. `total 23, used 0, free 21, available 22`."""
    for line in _run("free", "-g").splitlines():
        if line.startswith("Mem:"):
            fields = line.split()
            return f"total {fields[1]}, used {fields[2]}, free {fields[3]}, available {fields[6]}"
    return "?"


def versions() -> dict[str, str]:
    return {
        "Python": platform.python_version(),
        "asyncssh": metadata.version("asyncssh"),
        "OpenSSH": _run("ssh", "-V").split(",")[0],
    }


def environment() -> str:
    """A short Markdown block naming the machine and the software versions."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    soft = ", ".join(f"{k} {v}" for k, v in versions().items())
    return (
        f"Measured {stamp} · `nproc` {os.cpu_count()} · `free -g` {memory_gib()} · "
        f"CPU {cpu_model()} · {soft}"
    )


def update_readme(section: str, body: str) -> None:
    """Replace (or append) the section `section` of bench/README.md with `body`."""
    start, end = f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    if README.exists():
        text = README.read_text()
    else:  # every section's place, in reading order, before any has run
        text = _HEADER + "".join(
            f"\n<!-- bench:{name}:start -->\n<!-- bench:{name}:end -->\n" for name in SECTIONS
        )
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    README.write_text(text)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join(
        [line(header), "|" + "|".join(" --- " for _ in header) + "|"] + [line(row) for row in rows]
    )


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*row) for row in rows]
    )
