"""Issue #5, "Done when", as users do it: real processes only.

(a) A brand creates, with the `dropyard` command, a scheduled pull of conversions from
its partner's SFTP server (OpenSSH). The review shows the server's host key, the one
`ssh-keygen -lf` prints, and nothing is created until the brand accepts it. A CSV left in
the partner's folder is then taken on schedule by the running `dropyard serve` (its
scheduler claims the minute's run, its worker pulls and imports), and the receipt and the
summary appear in the partner's result folder.

(b) A partner's daily report goes out by SFTP to the partner's own folder and by mail
through the relay, run now with `dropyard connections run` instead of waiting a day; the
file's history says it was delivered.

The scheduled pull waits for the next whole minute: (b) runs while it does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from dropyard.files.models import ScheduledRun
from dropyard.ledger.models import Action
from dropyard.outbound.generators import PERFORMANCE_COLUMNS
from tests.acceptance.conftest import installation_env
from tests.cli.conftest import Cli, make_cli
from tests.gateway.conftest import MailSink
from tests.remote.sshd import Sshd
from tests.support import OPERATOR, RunningServer, unique

pytestmark = pytest.mark.xdist_group("acceptance")

T = TypeVar("T")
ORDERS = ("ACC-1001", "ACC-1002")


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.5)


def keygen_fingerprint(key: Path) -> str:
    """The SHA256 fingerprint exactly as `ssh-keygen -lf` prints it."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(key)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    found = re.search(r"SHA256:[A-Za-z0-9+/]{43}", out)
    assert found, out
    return found.group(0)


def partner_folder(sshd: Sshd, purpose: str) -> tuple[str, Path]:
    return sshd.folder(f"{purpose}-{uuid.uuid4().hex[:8]}")


@dataclass
class Platform:
    """The installation as its users reach it: the command line, with the operator's
    settings, on the data dir and database of the running server."""

    server: RunningServer
    cli: Cli
    brand_id: int
    partner_account_id: int
    campaign_id: int
    tracker_id: int
    partner_id: int

    def conversions(self) -> bytes:
        day = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT10:00:00Z")
        lines = ["CampaignId,ActionTrackerId,EventDate,OrderId,MediaPartnerId,CurrencyCode,Amount"]
        lines += [
            f"{self.campaign_id},{self.tracker_id},{day},{order},{self.partner_id},USD,25.00"
            for order in ORDERS
        ]
        return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def platform(installation: RunningServer, relay: MailSink) -> Platform:
    """A brand with a campaign, and a partner (with an account of its own) in it: the
    platform's own data, set up by the operator."""
    app = installation.app
    brand = app.accounts.create_account(OPERATOR, name=unique("Acme Shoes"), kind="brand")
    partner = app.accounts.create_account(OPERATOR, name=unique("Blog One"), kind="partner")
    campaign_id, tracker_id, partner_id = 70_000 + brand.id, 80_000 + brand.id, 90_000 + brand.id
    app.ledger.create_campaign(
        OPERATOR,
        account=brand.id,
        campaign_id=campaign_id,
        name="US",
        currency="USD",
        payout_rate="0.10",
        trackers=[tracker_id],
    )
    app.ledger.create_partner(OPERATOR, partner_id=partner_id, name="Blog One", account=partner.id)
    app.ledger.join(OPERATOR, partner_id=partner_id, campaign_id=campaign_id)
    settings = installation.settings
    cli = make_cli(settings.data_dir, settings.resolved_database_url)
    cli.env.update(installation_env(relay))
    return Platform(installation, cli, brand.id, partner.id, campaign_id, tracker_id, partner_id)


@dataclass
class ScheduledPull:
    connection_id: int
    name: str  # of the file left in the partner's folder
    result_local: Path


def pull_args(platform: Platform, sshd: Sshd, folder: str, results: str) -> list[str]:
    return [
        "connections", "create", "--account", str(platform.brand_id),
        "--name", unique("Partner SFTP pull"),
        "--direction", "inbound", "--data-type", "conversions",
        "--method", "sftp", "--methodology", "pull",
        "--host", "127.0.0.1", "--port", str(sshd.port), "--folder", folder,
        "--file-pattern", "orders_*.csv", "--result-folder", results,
        "--schedule", "* * * * *", "--stable-seconds", "1",
        "--new-credential-kind", "password", "--username", sshd.user.name, "--password-stdin",
    ]  # fmt: skip


def brand_creates_a_scheduled_pull(platform: Platform, sshd: Sshd) -> ScheduledPull:
    folder, local = partner_folder(sshd, "outgoing")
    results, result_local = partner_folder(sshd, "results")
    # The partner's file waits already, so the first scheduled run finds it (whenever the
    # minute turns) and the review's listing shows it.
    name = f"orders_{uuid.uuid4().hex[:6]}.csv"
    placed = local / name
    placed.write_bytes(platform.conversions())
    os.chown(placed, sshd.user.uid, sshd.user.gid)
    args = pull_args(platform, sshd, folder, results)
    host_key = keygen_fingerprint(sshd.host_key)

    refused = platform.cli.run(*args, stdin=sshd.user.password, code=2)

    assert f"Host key: {host_key} (will be pinned)" in refused.stdout
    assert name in refused.stdout
    assert f"To trust it, add --accept-host-key {host_key}" in refused.stderr
    assert sshd.user.password not in refused.stdout + refused.stderr
    assert (
        platform.server.app.connections.list_connections(OPERATOR, account=platform.brand_id) == []
    )  # nothing was created
    made = platform.cli.json(*args, "--accept-host-key", host_key, stdin=sshd.user.password)
    assert made["details"]["host_key_fingerprint"] == host_key
    assert made["details"]["schedule"] == "* * * * *"
    assert made["trust"] is None
    assert made["uri"] == f"sftp://{sshd.user.name}@127.0.0.1:{sshd.port}{folder}"
    return ScheduledPull(made["id"], name, result_local)


def deliver_args(platform: Platform, name: str, *how: str) -> list[str]:
    return [
        "connections", "create", "--account", str(platform.partner_account_id),
        "--name", name, "--direction", "outbound", "--data-type", "reports",
        "--methodology", "deliver", "--report", "performance_by_day", "--schedule", "daily",
        *how,
    ]  # fmt: skip


def delivered(platform: Platform, connection_id: int) -> dict[str, Any]:
    """Run the connection now; the file's record and history once the running worker
    delivered it, as `dropyard files show` tells them."""
    ran = platform.cli.json("connections", "run", str(connection_id))
    file_id = ran["file"]["id"]
    wait_for(
        f"delivery of file {file_id}",
        lambda: platform.server.app.files.get(OPERATOR, file_id)[0].state == "delivered",
        timeout=30,
    )
    shown: dict[str, Any] = platform.cli.json("files", "show", str(file_id))
    return shown


def partner_gets_the_daily_report(platform: Platform, sshd: Sshd, relay: MailSink) -> None:
    folder, local = partner_folder(sshd, "reports")
    sftp = [
        "--method", "sftp", "--host", "127.0.0.1", "--port", str(sshd.port),
        "--folder", folder, "--new-credential-kind", "password",
        "--username", sshd.user.name, "--password-stdin",
        "--accept-host-key", keygen_fingerprint(sshd.host_key),
    ]  # fmt: skip
    by_sftp = platform.cli.json(
        *deliver_args(platform, unique("Daily report by SFTP"), *sftp), stdin=sshd.user.password
    )
    to = f"reports-{uuid.uuid4().hex[:6]}@blog-one.example"
    by_mail = platform.cli.json(
        *deliver_args(
            platform, unique("Daily report by mail"), "--method", "email", "--recipients", to
        )
    )

    sent = delivered(platform, by_sftp["id"])

    name = sent["file"]["name"]
    assert [p.name for p in local.iterdir()] == [name]  # the final name, no temp file left
    data = (local / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sent["file"]["sha256"]
    assert data.decode().splitlines()[0] == ",".join(PERFORMANCE_COLUMNS)
    last = sent["history"][-1]
    assert last["state"] == "delivered"
    assert last["reason"] == f"delivered to sftp://127.0.0.1:{sshd.port}{folder}/{name}"

    mailed = delivered(platform, by_mail["id"])

    message = relay.wait_for(to)
    (attachment,) = list(message.iter_attachments())  # type: ignore[attr-defined]
    assert attachment.get_filename() == mailed["file"]["name"]
    assert (
        hashlib.sha256(attachment.get_content().encode()).hexdigest() == (mailed["file"]["sha256"])
    )
    assert mailed["history"][-1]["state"] == "delivered"
    assert mailed["history"][-1]["reason"] == f"delivered by email to {to} (attached)"


def the_pull_ran_on_schedule(platform: Platform, pull: ScheduledPull) -> None:
    summary_path = pull.result_local / f"result_{pull.name}_summary.json"
    # The run of the next whole minute after the connection was made (within its loop).
    wait_for("the scheduled pull's summary", summary_path.exists, timeout=90)

    listed = platform.cli.json("files", "list", "--connection", str(pull.connection_id))
    assert [(f["name"], f["state"], f["ok_rows"]) for f in listed] == [
        (pull.name, "processed", len(ORDERS))
    ]
    summary = json.loads(summary_path.read_text())
    assert (summary["fileName"], summary["status"], summary["successfulRowCount"]) == (
        pull.name,
        "COMPLETED",
        len(ORDERS),
    )
    receipt = (pull.result_local / f"receipt_{pull.name}.txt").read_text()
    assert pull.name in receipt and listed[0]["sha256"] in receipt
    app = platform.server.app
    with app.sessions() as session:
        runs = session.scalars(
            select(ScheduledRun).where(ScheduledRun.connection_id == pull.connection_id)
        ).all()
        orders = session.scalars(
            select(Action.order_id).where(Action.campaign_id == platform.campaign_id)
        ).all()
    assert [(r.state, r.reason) for r in runs] == [("done", f"took 1 file ({pull.name})")]
    assert runs[0].due_at.second == 0  # a whole minute: the scheduler's, not a manual run
    assert sorted(orders) == sorted(ORDERS)


def test_done_when(platform: Platform, sshd: Sshd, relay: MailSink) -> None:
    pull = brand_creates_a_scheduled_pull(platform, sshd)
    partner_gets_the_daily_report(platform, sshd, relay)
    the_pull_ran_on_schedule(platform, pull)
