"""`dropyard serve`: every enabled front-end in one process, one asyncio loop.

Writes the ports it bound to `<data-dir>/run/ports.json`; on SIGTERM or SIGINT it stops
accepting, gives transfers in flight a grace period, and leaves nothing half-committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import uvicorn

from dropyard.app import Dropyard
from dropyard.cluster.duties import scheduler_duties
from dropyard.cluster.leader import LEASE_NAME, LeaderLoop
from dropyard.cluster.lease import Lease, node_name
from dropyard.files import spool
from dropyard.gateway.ftp import FtpFrontEnd
from dropyard.gateway.mail_intake import MailIntake
from dropyard.gateway.proxy_protocol import ProxyPolicy
from dropyard.gateway.sftp import SftpFrontEnd, SftpLimits, load_host_keys
from dropyard.gateway.smtp import SmtpFrontEnd
from dropyard.gateway.tls import certificate_for, server_context
from dropyard.jobs.queue import embedded_consumer
from dropyard.metrics import MetricsServer
from dropyard.settings import ROLES

log = logging.getLogger(__name__)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: this process has one owner of signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def write_ports(run_dir: Path, ports: dict[str, int]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    temp = run_dir / ".ports.json.tmp"
    temp.write_text(json.dumps(ports))
    os.replace(temp, run_dir / "ports.json")


async def serve(app: Dropyard, *, roles: tuple[str, ...] = ROLES) -> None:
    settings = app.settings
    # Behind a TCP load balancer: refuses to start without the balancer's networks.
    proxy = ProxyPolicy.from_settings(settings)
    removed = spool.sweep(settings.spool_dir)
    if removed:
        log.info("removed %d unfinished uploads left by an earlier run", removed)

    ports: dict[str, int] = {}
    stoppers: list[Callable[[], Awaitable[None]]] = []
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    try:
        if "sftp" in roles:
            front = SftpFrontEnd(
                app.gateway,
                host_keys=load_host_keys(
                    settings.keys_dir,
                    shared=app.installation,
                    files=settings.ssh_host_key_files,
                ),
                limits=SftpLimits(
                    max_sessions_per_address=settings.sftp_max_sessions_per_address,
                    max_sessions_per_login=settings.sftp_max_sessions_per_login,
                ),
                proxy=proxy,
            )
            ports["sftp"] = await front.start(settings.bind_host, settings.sftp_port)
            stoppers.append(lambda: front.stop(settings.shutdown_grace_seconds))

        if "ftp" in roles or "smtp" in roles:
            # The operator's certificate or the installation's, which this also writes to
            # keys_dir, where the FTPS listener loads it from.
            cert, key = certificate_for(settings, shared=app.installation)

        if "ftp" in roles:
            ftp = FtpFrontEnd.from_settings(app.gateway, settings)
            ports["ftp"] = await ftp.start(settings.bind_host, settings.ftp_port)
            stoppers.append(lambda: ftp.stop(settings.shutdown_grace_seconds))

        if "smtp" in roles:
            mail = SmtpFrontEnd(
                MailIntake(
                    connections=app.connections,
                    files=app.files,
                    audit_log=app.audit,
                    mailer=app.mailer,
                    mail_domain=settings.mail_domain,
                    metrics=app.metrics,
                ),
                hostname=settings.public_host,
                data_size_limit=settings.max_email_bytes,
                tls_context=server_context(cert, key),
                proxy=proxy,
            )
            ports["smtp"] = await mail.start(settings.bind_host, settings.smtp_port)
            stoppers.append(lambda: mail.stop(settings.shutdown_grace_seconds))

        if "web" in roles:
            from dropyard.web.api.app import create_app

            sock = _bind(settings.bind_host, settings.web_port)
            ports["web"] = int(sock.getsockname()[1])
            # log_config=None: uvicorn logs through the process's handler (text or JSON).
            config = uvicorn.Config(
                create_app(app),
                log_level="warning",
                access_log=False,
                lifespan="off",
                log_config=None,
                # Behind the balancer the console is reached through it (HTTP mode): the
                # client's address is in X-Forwarded-For, believed from the balancer only.
                forwarded_allow_ips=list(settings.proxy_trusted) if proxy is not None else None,
            )
            web = _Uvicorn(config)
            tasks.append(asyncio.create_task(web.serve(sockets=[sock])))

            async def _stop_web() -> None:
                web.should_exit = True

            stoppers.append(_stop_web)

        if "worker" in roles:
            consumer = embedded_consumer(app.jobs.huey, workers=settings.workers)
            consumer.start()

            async def _stop_worker() -> None:
                await asyncio.to_thread(consumer.stop, graceful=True)

            stoppers.append(_stop_worker)

        if "scheduler" in roles:
            leader = LeaderLoop(
                Lease(
                    app.sessions,
                    name=LEASE_NAME,
                    holder=node_name(),
                    seconds=settings.scheduler_lease_seconds,
                ),
                scheduler_duties(app.jobs, app.defender, settings),
                renew_seconds=settings.scheduler_loop_seconds,
                lease_seconds=settings.scheduler_lease_seconds,
            )
            leader.start()

            async def _stop_leader() -> None:
                await asyncio.to_thread(leader.stop)

            stoppers.append(_stop_leader)

        if settings.metrics_port is not None:
            exporter = MetricsServer(app.metrics, token=settings.metrics_token)
            ports["metrics"] = exporter.start(settings.bind_host, settings.metrics_port)

            async def _stop_metrics() -> None:
                await asyncio.to_thread(exporter.stop)

            stoppers.append(_stop_metrics)

        write_ports(settings.run_dir, ports)
        log.info("listening: %s", ", ".join(f"{k}={v}" for k, v in ports.items()))
        print(json.dumps({"listening": ports}), flush=True)
        await stop.wait()
        log.info("shutting down")
    finally:
        for stopper in reversed(stoppers):
            with contextlib.suppress(Exception):
                await stopper()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, settings.shutdown_grace_seconds)
        (settings.run_dir / "ports.json").unlink(missing_ok=True)
