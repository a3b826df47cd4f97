"""Pull and deliver end to end, against real partners' servers on loopback: OpenSSH sshd
(tests/remote/sshd.py), pyftpdlib FTP(S) (tests/ftpserver.py), an aiosmtpd relay, and
Dropyard's own hosted SFTP. Each server starts once per test session (per xdist worker).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dropyard.app import Dropyard
from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.db.engine import transaction
from dropyard.files.models import File, FileEvent, ScheduledRun
from dropyard.files.service import FileService
from dropyard.remote.base import Limits
from dropyard.remote.ftp import open_ftp
from dropyard.remote.guard import NetworkGuard
from dropyard.remote.imap import attachments, open_mailbox
from dropyard.remote.limits import remote_limits
from dropyard.remote.mailer import Mailer
from dropyard.remote.service import RemoteService
from dropyard.remote.sftp import open_sftp
from dropyard.settings import Settings
from tests.ftpserver import ftp_server  # noqa: F401  (the session fixture)
from tests.gateway.conftest import MailSink, running_mail_sink
from tests.remote.sshd import Sshd, running_sshd
from tests.support import OPERATOR, RunningServer, served, unique, walk_wizard


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


@pytest.fixture(scope="session")
def dropyard_sftp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Another Dropyard installation: the far side of Dropyard delivering to Dropyard."""
    with served("sqlite", tmp_path_factory.mktemp("far-dropyard"), name="far", roles="sftp") as far:
        yield far


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    with running_mail_sink() as sink:
        yield sink


@pytest.fixture
def settings(tmp_path: Path, database_url: str, mail_sink: MailSink) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_host="127.0.0.1",
        allow_networks=["127.0.0.1/32"],
        smtp_relay_host="127.0.0.1",
        smtp_relay_port=mail_sink.port,
        smtp_relay_starttls=False,
        remote_connect_timeout=5,
        remote_idle_timeout=5,
    )


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Flow:
    """A brand with a campaign to import conversions into, and ways to make connections."""

    app: Dropyard
    account_id: int
    campaign_id: int
    tracker_id: int
    partner_id: int

    def service(
        self,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = utcnow,
        guard: NetworkGuard | None = None,
        limits: Callable[[], Limits] | None = None,
        max_files: int | None = None,
        mailer: Mailer | None = None,
        files: FileService | None = None,
    ) -> RemoteService:
        """A RemoteService wired as app.py wires it, with the seams a test turns."""
        settings = self.app.settings
        return RemoteService(
            self.app.sessions,
            self.app.credentials,
            files or self.app.files,
            guard=guard or NetworkGuard(settings.allowed_networks),
            openers={"sftp": open_sftp, "ftp": open_ftp},
            open_mailbox=open_mailbox,
            attachments=attachments,
            mailer=mailer or self.app.mailer,
            links=self.app.remote.links,
            limits=limits or (lambda: remote_limits(settings)),
            runs=self.app.scheduler,
            max_files_per_run=max_files or settings.remote_max_files_per_run,
            relay="127.0.0.1",
            sleep=sleep,
            clock=clock,
        )

    def csv(self, *orders: str) -> bytes:
        day = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT10:00:00Z")
        lines = ["CampaignId,ActionTrackerId,EventDate,OrderId,MediaPartnerId,CurrencyCode,Amount"]
        lines += [
            f"{self.campaign_id},{self.tracker_id},{day},{order},{self.partner_id},USD,10.00"
            for order in orders
        ]
        return ("\n".join(lines) + "\n").encode()

    def connection(
        self,
        *,
        method: str,
        methodology: str,
        details: Mapping[str, Any],
        username: str = "",
        password: str = "",
        direction: str | None = None,
        data_type: str | None = None,
    ) -> int:
        outbound = methodology == "deliver"
        credential: dict[str, Any] = {}
        if method != "email" or methodology == "pull":
            credential = {
                "new": {
                    "kind": "remote_password",
                    "name": unique("their login"),
                    "username": username,
                    "password": password,
                }
            }
        created = walk_wizard(
            self.app,
            OPERATOR,
            account=self.account_id,
            name=unique("Partner"),
            direction=direction or ("outbound" if outbound else "inbound"),
            data_type=data_type or ("reports" if outbound else "conversions"),
            method=method,
            methodology=methodology,
            details=dict(details),
            credential=credential,
        )
        return created.connection.id

    def sftp_pull(self, sshd: Sshd, folder: str, **details: Any) -> int:
        return self.connection(
            method="sftp",
            methodology="pull",
            details={
                "host": "127.0.0.1",
                "port": sshd.port,
                "folder": folder,
                "file_pattern": "*.csv",
                "host_key_fingerprint": sshd.fingerprint,
                "stable_seconds": 0,
                **details,
            },
            username=sshd.user.name,
            password=sshd.user.password,
        )

    def placeholder_pull(self) -> int:
        """A pull connection no test connects to (its rows need one)."""
        return self.connection(
            method="sftp",
            methodology="pull",
            details={"host": "files.partner.example", "folder": "/out", "file_pattern": "*"},
            username="someone",
            password="secret",
        )

    def files(self, connection_id: int) -> list[File]:
        with self.app.sessions() as session:
            query = select(File).where(File.connection_id == connection_id).order_by(File.id)
            return list(session.scalars(query))

    def history(self, file_id: int) -> list[str]:
        with self.app.sessions() as session:
            query = select(FileEvent.reason).where(FileEvent.file_id == file_id)
            return list(session.scalars(query.order_by(FileEvent.id)))

    def process_all(self, connection_id: int) -> list[str]:
        return [
            self.app.processor.process(f.id) or f.state
            for f in self.files(connection_id)
            if f.state == "received"
        ]

    def scheduled_run(self, connection_id: int) -> str:
        run_id = self.app.scheduler.claim(
            connection_id, datetime.now(UTC).replace(microsecond=0), now=utcnow()
        )
        assert run_id is not None
        return run_id

    def run_outcome(self, run_id: str) -> tuple[str, str]:
        with self.app.sessions() as session:
            run = session.scalar(select(ScheduledRun).where(ScheduledRun.run_id == run_id))
            assert run is not None
            return run.state, run.reason


@pytest.fixture
def flow(app: Dropyard) -> Flow:
    account = app.accounts.create_account(OPERATOR, name=unique("Brand"), kind="brand")
    campaign_id, tracker_id, partner_id = (
        10_000 + account.id,
        50_000 + account.id,
        20_000 + account.id,
    )
    app.ledger.create_campaign(
        OPERATOR,
        account=account.id,
        campaign_id=campaign_id,
        name="US",
        currency="USD",
        payout_rate="0.08",
        trackers=[tracker_id],
    )
    app.ledger.create_partner(OPERATOR, partner_id=partner_id, name="Blog One")
    app.ledger.join(OPERATOR, partner_id=partner_id, campaign_id=campaign_id)
    return Flow(app, account.id, campaign_id, tracker_id, partner_id)


def fresh(sshd: Sshd, prefix: str = "t", *, mode: int = 0o755) -> tuple[str, Path]:
    """A new folder in the sshd chroot: (path the client uses, path here)."""
    return sshd.folder(f"{prefix}-{uuid.uuid4().hex[:10]}", mode=mode)


def put(local: Path, name: str, data: bytes, *, owner: Sshd | None = None) -> Path:
    path = local / name
    path.write_bytes(data)
    if owner is not None:
        os.chown(path, owner.user.uid, owner.user.gid)
    return path


def generated(flow: Flow, connection_id: int, name: str, data: bytes) -> int:
    """An outbound file as a run leaves it for delivery (`generated`, in storage)."""
    trace_id = str(uuid.uuid4())
    key = f"outbound/{connection_id}/{trace_id}"
    flow.app.storage.put_bytes(key, data)
    with transaction(flow.app.sessions) as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        row = File(
            trace_id=trace_id,
            account_id=connection.account_id,
            connection_id=connection_id,
            direction="outbound",
            name=name,
            size=len(data),
            sha256="0" * 64,
            storage_key=key,
            source="generated",
            state="generated",
            total_rows=1,
        )
        session.add(row)
        session.flush()
        session.add(FileEvent(file_id=row.id, state="generated", reason="generated for a test"))
        return row.id


def file_row(flow: Flow, file_id: int) -> File:
    with flow.app.sessions() as session:
        row = session.get(File, file_id)
        assert row is not None
        session.expunge(row)
        return row
