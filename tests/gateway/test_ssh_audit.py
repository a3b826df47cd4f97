"""The SFTP server's algorithms pass `ssh-audit` with no failures and no warnings other than
post-quantum ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import RunningServer


def _ssh_audit() -> list[str]:
    found = shutil.which("ssh-audit") or str(Path(sys.executable).parent / "ssh-audit")
    return [found]


def test_ssh_audit_reports_no_failures_or_warnings(server: RunningServer) -> None:
    done = subprocess.run(
        [*_ssh_audit(), "-j", "--skip-rate-test", "-p", str(server.ports["sftp"]), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = json.loads(done.stdout)
    problems = []
    for section in ("kex", "key", "enc", "mac"):
        for alg in report.get(section, []):
            notes = alg.get("notes", {})
            for level in ("fail", "warn"):
                for note in notes.get(level, []):
                    if "quantum" not in note.lower():
                        problems.append(f"{section} {alg['algorithm']}: {level}: {note}")
    assert problems == [], "\n".join(problems)
    kex = {alg["algorithm"] for alg in report["kex"]}
    assert "kex-strict-s-v00@openssh.com" in kex
    enc = {alg["algorithm"] for alg in report["enc"]}
    assert not any("cbc" in e for e in enc)
    mac = {alg["algorithm"] for alg in report["mac"]}
    assert not any("sha1" in m for m in mac)
