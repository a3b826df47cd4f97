"""Composition root: builds every service from Settings. The only module that knows all."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from dropyard.accounts.audit import AuditLog
from dropyard.accounts.service import AccountService
from dropyard.cluster.secrets import InstallationSecrets
from dropyard.connections.service import ConnectionService
from dropyard.credentials.secrets import SecretBox, load_or_create_master_key
from dropyard.credentials.service import CredentialService
from dropyard.datatypes.readers import Limits
from dropyard.datatypes.registry import inbound_types
from dropyard.db import migrate
from dropyard.db.engine import SessionFactory, make_engine, make_session_factory
from dropyard.files.channels import ConnectionResults
from dropyard.files.processing import Processor
from dropyard.files.service import FileService
from dropyard.gateway.defender import Defender, DefenderPolicy
from dropyard.gateway.logins import Gateway
from dropyard.jobs.queue import Jobs, make_huey
from dropyard.jobs.scheduler import Scheduler
from dropyard.ledger.service import LedgerService
from dropyard.metrics import Metrics
from dropyard.outbound.service import OutboundService
from dropyard.remote.ftp import open_ftp
from dropyard.remote.guard import NetworkGuard
from dropyard.remote.imap import attachments, open_mailbox
from dropyard.remote.limits import remote_limits
from dropyard.remote.links import DownloadLinks, LinkSigner, derive_link_key, link_base
from dropyard.remote.mailer import Mailer, build_mailer
from dropyard.remote.service import RemoteService
from dropyard.remote.sftp import open_sftp
from dropyard.settings import Settings
from dropyard.storage.base import Storage
from dropyard.storage.factory import make_storage


@dataclass
class Dropyard:
    """Every service of one process, wired from one Settings."""

    settings: Settings
    engine: Engine
    sessions: SessionFactory
    audit: AuditLog
    accounts: AccountService
    credentials: CredentialService
    connections: ConnectionService
    ledger: LedgerService
    storage: Storage
    files: FileService
    defender: Defender
    gateway: Gateway
    mailer: Mailer
    box: SecretBox
    processor: Processor
    jobs: Jobs
    outbound: OutboundService
    scheduler: Scheduler
    metrics: Metrics
    installation: InstallationSecrets
    remote: RemoteService

    def migrate(self) -> None:
        migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings) -> Dropyard:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    master_key = load_or_create_master_key(settings.keys_dir / "master.key", settings.master_key)
    box = SecretBox(master_key)
    audit = AuditLog(sessions)
    credentials = CredentialService(
        sessions, box, overlap=timedelta(hours=settings.credential_overlap_hours)
    )
    connections = ConnectionService(sessions, credentials, settings=settings)
    storage = make_storage(settings)
    files = FileService(
        sessions, storage, spool_dir=settings.spool_dir, max_file_bytes=settings.max_file_bytes
    )
    defender = Defender(
        DefenderPolicy(
            max_failures=settings.ban_after_failures,
            window_seconds=settings.ban_window_seconds,
            ban_seconds=settings.ban_seconds,
            allow=tuple(settings.defender_allow),
        ),
        sessions=sessions,  # bans hold on every node
    )
    metrics = Metrics()
    gateway = Gateway(
        credentials=credentials,
        connections=connections,
        files=files,
        defender=defender,
        audit=audit,
        metrics=metrics,
    )
    mailer = build_mailer(settings)
    scheduler = Scheduler(sessions)
    remote = RemoteService(
        sessions,
        credentials,
        files,
        guard=NetworkGuard(settings.allowed_networks),
        openers={"sftp": open_sftp, "ftp": open_ftp},
        open_mailbox=open_mailbox,
        attachments=attachments,
        mailer=mailer,
        links=DownloadLinks(
            sessions, files, LinkSigner(derive_link_key(master_key)), base_url=link_base(settings)
        ),
        limits=lambda: remote_limits(settings),
        runs=scheduler,
        max_files_per_run=settings.remote_max_files_per_run,
        stable_check=settings.remote_stable_check,
        relay=(
            f"{settings.smtp_relay_host}:{settings.smtp_relay_port}"
            if settings.smtp_relay_host
            else None
        ),
    )
    processor = Processor(
        sessions,
        storage,
        data_types=inbound_types(),
        channel=ConnectionResults(sessions, files, mailer=mailer, remote=remote.results),
        work_dir=settings.spool_dir,
        limits=Limits(
            max_expanded_bytes=settings.max_expanded_bytes, max_ratio=settings.max_expansion_ratio
        ),
        max_attempts=settings.max_attempts,
        lease=timedelta(seconds=settings.lease_seconds),
    )
    outbound = OutboundService(sessions, files, storage, work_dir=settings.spool_dir)
    jobs = Jobs(
        make_huey(settings),
        processor,
        outbound=outbound,
        scheduler=scheduler,
        metrics=metrics,
        remote=remote,
    )
    metrics.watch(sessions=sessions, queue_depth=jobs.huey.pending_count)
    files.set_notify(jobs.enqueue_file)
    gateway.on_download = outbound.mark_downloaded
    gateway.on_delete = outbound.removed_by_partner
    return Dropyard(
        settings=settings,
        engine=engine,
        sessions=sessions,
        audit=audit,
        accounts=AccountService(sessions),
        credentials=credentials,
        connections=connections,
        ledger=LedgerService(sessions),
        storage=storage,
        files=files,
        defender=defender,
        gateway=gateway,
        mailer=mailer,
        box=box,
        processor=processor,
        jobs=jobs,
        outbound=outbound,
        scheduler=scheduler,
        metrics=metrics,
        installation=InstallationSecrets(sessions, box),
        remote=remote,
    )
