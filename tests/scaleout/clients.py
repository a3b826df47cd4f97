"""What the scale-out tests do as partners and operators: a brand with a campaign and a
drop box, conversions files, OpenSSH `sftp` sessions (also one left running in the
background), `ssh-keyscan`, and the database and bucket as an operator reads them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from dropyard.app import Dropyard
from dropyard.files.models import File
from dropyard.ledger.models import Action
from tests.gateway.sftp_client import Result, sftp_batch
from tests.support import OPERATOR, DropBox, drop_box, unique

HEADER = "CampaignId,ActionTrackerId,EventDate,OrderId,MediaPartnerId,CurrencyCode,Amount\n"


@dataclass(frozen=True)
class Brand:
    """An account with one campaign, tracker and partner, and an inbound SFTP drop box."""

    box: DropBox
    campaign_id: int
    tracker_id: int
    partner_id: int

    def conversions(self, rows: int, *, prefix: str = "ORD") -> bytes:
        """`rows` valid conversions, dated an hour ago, with unique order ids."""
        at = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines = [HEADER]
        lines += [
            f"{self.campaign_id},{self.tracker_id},{at},{prefix}-{n},{self.partner_id},USD,"
            f"{n % 500}.25\n"
            for n in range(rows)
        ]
        return "".join(lines).encode()


def new_brand(app: Dropyard) -> Brand:
    account = app.accounts.create_account(OPERATOR, name=unique("Scale"), kind="brand")
    campaign_id = 30_000 + account.id
    tracker_id = 60_000 + account.id
    partner_id = 90_000 + account.id
    app.ledger.create_campaign(
        OPERATOR,
        account=account.id,
        campaign_id=campaign_id,
        name="Scale US",
        currency="USD",
        payout_rate="0.05",
        trackers=[tracker_id],
    )
    app.ledger.create_partner(OPERATOR, partner_id=partner_id, name="Scale Partner")
    app.ledger.join(OPERATOR, partner_id=partner_id, campaign_id=campaign_id)
    box = drop_box(app, account_id=account.id)
    return Brand(box, campaign_id, tracker_id, partner_id)


# -- partners' clients --------------------------------------------------------------------


def sftp(port: int, box: DropBox, commands: str, cwd: Path, timeout: float = 60) -> Result:
    return sftp_batch(port, box.login, box.password, commands, cwd=cwd, timeout=timeout)


def put(port: int, box: DropBox, local: Path, name: str) -> Result:
    return sftp(port, box, f"put {local.name} /{box.folder}/{name}\n", local.parent)


def get(port: int, box: DropBox, name: str, cwd: Path) -> bytes | None:
    """A file of the box's folder, or None when it is not (yet) there."""
    target = cwd / f"got-{name}"
    target.unlink(missing_ok=True)
    done = sftp(port, box, f"get /{box.folder}/{name} {target.name}\n", cwd)
    if done.code != 0 or not target.exists():
        return None
    return target.read_bytes()


def background_put(
    port: int, box: DropBox, local: Path, name: str, *, kbit_per_s: int
) -> subprocess.Popen[str]:
    """`sftp -b` putting one file at a capped rate (`-l`), left running: the caller
    decides what happens to the server meanwhile."""
    batch = local.parent / f"batch-{name}.txt"
    batch.write_text(f"put {local.name} /{box.folder}/{name}\n")
    options = {
        "BatchMode": "no",  # before -b, which sets it to yes: sshpass answers the prompt
        "StrictHostKeyChecking": "no",
        "UserKnownHostsFile": "/dev/null",
        "LogLevel": "ERROR",
        "ConnectTimeout": "10",
        "PreferredAuthentications": "password",
        "PubkeyAuthentication": "no",
    }
    args = ["sshpass", "-p", box.password, "sftp"]
    for key, value in options.items():
        args += ["-o", f"{key}={value}"]
    args += ["-b", str(batch), "-l", str(kbit_per_s), "-P", str(port), f"{box.login}@127.0.0.1"]
    return subprocess.Popen(
        args,
        cwd=local.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def keyscan(port: int) -> set[str]:
    """The host keys a server presents, as OpenSSH's `ssh-keyscan` sees them."""
    done = subprocess.run(
        ["ssh-keyscan", "-T", "10", "-p", str(port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    found = set()
    for line in done.stdout.splitlines():
        if line and not line.startswith("#"):
            _host, kind, blob = line.split()[:3]
            found.add(f"{kind} {blob}")
    return found


def fingerprints(port: int) -> set[str]:
    """SHA256 fingerprints of the host keys, as `ssh-keygen -l` prints them to a user."""
    lines = "".join(f"127.0.0.1 {key}\n" for key in sorted(keyscan(port)))
    done = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", "-"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return {line.split()[1] for line in done.stdout.splitlines() if "SHA256:" in line}


# -- what an operator reads --------------------------------------------------------------


def files_of(app: Dropyard, connection_id: int) -> list[File]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(File).where(File.connection_id == connection_id).order_by(File.id)
            )
        )


def actions_of(app: Dropyard, campaign_id: int) -> int:
    with app.sessions() as session:
        query = select(func.count(Action.id)).where(Action.campaign_id == campaign_id)
        return int(session.scalar(query) or 0)


def wait_for(check: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)
