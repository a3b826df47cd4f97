"""The issue's acceptance run: a real `dropyard serve` (web, sftp, scheduler, worker) on
SQLite, the partner's OpenSSH sshd (tests/remote/sshd.py) and an aiosmtpd relay, each
started once per test session, driven by the real `dropyard` command."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.gateway.conftest import MailSink, running_mail_sink
from tests.remote.sshd import Sshd, running_sshd
from tests.support import RunningServer, served


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    with running_sshd() as server:
        yield server


@pytest.fixture(scope="session")
def relay() -> Iterator[MailSink]:
    with running_mail_sink() as sink:
        yield sink


def installation_env(relay: MailSink) -> dict[str, str]:
    """What the operator configures: partners on loopback may be reached, mail goes out
    through the relay, and the scheduler looks every second (due times are whole
    minutes: a run starts within a second of its minute)."""
    return {
        "DROPYARD_ALLOW_NETWORKS": json.dumps(["127.0.0.1/32"]),
        "DROPYARD_SMTP_RELAY_HOST": "127.0.0.1",
        "DROPYARD_SMTP_RELAY_PORT": str(relay.port),
        "DROPYARD_SMTP_RELAY_STARTTLS": "false",
        "DROPYARD_SCHEDULER_LOOP_SECONDS": "1",
        "DROPYARD_REMOTE_CONNECT_TIMEOUT": "10",
        "DROPYARD_REMOTE_IDLE_TIMEOUT": "10",
    }


@pytest.fixture(scope="session")
def installation(
    tmp_path_factory: pytest.TempPathFactory, relay: MailSink
) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp("acceptance")
    with served(
        "sqlite",
        data_dir,
        name="dropyard_acceptance",
        roles="web,sftp,scheduler,worker",
        extra_env=installation_env(relay),
    ) as running:
        yield running
