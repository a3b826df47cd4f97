"""Running the `dropyard` command as a user does: a subprocess on the test's database.

Every test here takes `database_url`, so it runs on SQLite and on PostgreSQL. The CLI and
the in-process `app` share one data dir (and so one master key) and one database.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The one JSON document on stdout (json.loads refuses trailing text)."""
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        """The JSON error document on stderr (--json)."""
        document: dict[str, Any] = json.loads(self.stderr)
        return document


@dataclass
class Cli:
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "dropyard", "--data-dir", str(self.data_dir), *args]

    def run(self, *args: str, stdin: str | None = None, code: int = 0) -> Result:
        """Run one command, its stdin a pipe (or nothing): never a terminal."""
        done = subprocess.run(
            self.argv(args),
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
            check=False,
        )
        result = Result(done.returncode, done.stdout, done.stderr)
        assert result.code == code, f"{args}: exit {result.code}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return result

    def json(self, *args: str, stdin: str | None = None) -> Any:
        return self.run(*args, "--json", stdin=stdin).json()

    def refused(self, *args: str, stdin: str | None = None) -> dict[str, Any]:
        """A command that must exit 2 with a JSON error naming the fields at fault."""
        result = self.run(*args, "--json", stdin=stdin, code=2)
        assert result.stdout == ""
        return result.error()

    def dialog(
        self, args: Sequence[str], script: Sequence[tuple[str, str | None]]
    ) -> tuple[int, str]:
        """Run a command on a pseudo-terminal: wait for each text, then type the answer
        (None: type nothing). Returns the exit code and all it showed, without ANSI codes."""
        master, slave = pty.openpty()
        process = subprocess.Popen(
            self.argv(args),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=self.env,
            close_fds=True,
        )
        os.close(slave)
        seen = ""
        position = 0
        try:
            for expected, answer in script:
                seen, found = _read_until(master, seen, expected, position)
                position = found + len(expected)
                if answer is not None:
                    os.write(master, answer.encode() + b"\r")
            seen, _ = _read_until(master, seen, None, position)
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(master)
        return code, seen


def _read_until(
    master: int, seen: str, expected: str | None, position: int, timeout: float = 60
) -> tuple[str, int]:
    """Read the terminal until `expected` shows after `position` (None: until it closes)."""
    deadline = time.monotonic() + timeout
    while True:
        clean = _ANSI.sub("", seen).replace("\r", "")
        if expected is not None and (found := clean.find(expected, position)) >= 0:
            return seen, found
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {expected!r} on the terminal; it shows:\n{clean}")
        ready, _, _ = select.select([master], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            if expected is None:
                return _ANSI.sub("", seen).replace("\r", ""), len(clean)
            raise AssertionError(f"the command ended before {expected!r}:\n{clean}")
        seen += chunk.decode(errors="replace")


def make_cli(data_dir: Path, database_url: str) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    env.update(
        {
            "DROPYARD_DATABASE_URL": database_url,
            "NO_COLOR": "1",
            "TERM": "dumb",
            "COLUMNS": "200",
        }
    )
    return Cli(data_dir, env)


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    return make_cli(tmp_path / "data", database_url)
