"""Run OpenSSH's `sftp` in batch mode against a test server (password via sshpass)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def sftp_batch(
    port: int,
    login: str,
    password: str | None,
    commands: str,
    *,
    cwd: Path,
    key: Path | None = None,
    bind: str | None = None,
    timeout: float = 60,
) -> Result:
    batch = cwd / "batch.txt"
    batch.write_text(commands)
    # BatchMode=no must come before -b (ssh keeps the first value) so sshpass can answer.
    args = [
        "sftp",
        "-o",
        "BatchMode=no",
        "-P",
        str(port),
        "-b",
        str(batch),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "NumberOfPasswordPrompts=1",
    ]
    if key is not None:
        args += [
            "-i",
            str(key),
            "-o",
            "PreferredAuthentications=publickey",
            "-o",
            "IdentitiesOnly=yes",
        ]
    else:
        args = [
            "sshpass",
            "-p",
            password or "",
            *args,
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
        ]
    if bind:
        args += ["-o", f"BindAddress={bind}"]
    args.append(f"{login}@127.0.0.1")
    done = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)
