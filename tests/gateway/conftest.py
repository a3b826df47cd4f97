"""One real `dropyard serve` per database per test worker, shared by the gateway tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support import RunningServer, served

# Small limits so that the limit tests need little data.
SERVER_ENV = {
    "DROPYARD_MAX_FILE_BYTES": str(8 * 1024 * 1024),
    "DROPYARD_MAX_EMAIL_BYTES": str(1024 * 1024),
    "DROPYARD_BAN_AFTER_FAILURES": "5",
}


class MailSink:
    """The relay the test servers send their own mail to: it keeps every message."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def wait_for(self, to: str, timeout: float = 10.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.messages:
                    if to in str(message["To"]):
                        return message
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} within {timeout}s")

    def sent_to(self, to: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if to in str(m["To"])]


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[MailSink]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    sink = MailSink(port)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mail_sink: MailSink,
) -> Iterator[RunningServer]:
    data_dir = tmp_path_factory.mktemp(f"serve-{request.param}")
    relay = {
        "DROPYARD_SMTP_RELAY_HOST": "127.0.0.1",
        "DROPYARD_SMTP_RELAY_PORT": str(mail_sink.port),
        "DROPYARD_SMTP_RELAY_STARTTLS": "false",
    }
    with served(
        request.param, data_dir, name="dropyard_gw", extra_env={**SERVER_ENV, **relay}
    ) as running:
        yield running


@contextlib.contextmanager
def running_mail_sink() -> Iterator[MailSink]:
    """A MailSink behind a real aiosmtpd server on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    sink = MailSink(port)
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
