"""Reaching, trusting and logging in to an FTP(S) server: what a connection test reports."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator

import pytest

from dropyard.remote.base import Limits, NotTrusted, RemoteError, RemoteRefused
from dropyard.remote.ftp import open_ftp
from tests.ftpserver import FtpServer


def _new_commands(server: FtpServer, variant: str, before: int) -> list[str]:
    # pyftpdlib logs a command before answering it, so the log is complete once we have
    # our answer; the server may still be reading the connection's end, so wait a moment.
    time.sleep(0.2)
    return server.commands(variant)[before:]


def test_a_changed_certificate_is_not_trusted_and_hears_no_login(ftp_server: FtpServer) -> None:
    before = len(ftp_server.commands("other_cert"))
    pinned = ftp_server.fingerprint("ftps")
    endpoint = ftp_server.endpoint("other_cert", pin=pinned)
    with pytest.raises(NotTrusted) as refused:
        open_ftp(endpoint, Limits())
    assert refused.value.stage == "trust"
    assert refused.value.presented == ftp_server.fingerprint("other_cert")
    assert refused.value.presented in refused.value.message
    sent = _new_commands(ftp_server, "other_cert", before)
    assert sent[:1] == ["AUTH"]
    assert "USER" not in sent and "PASS" not in sent


@pytest.mark.parametrize(
    "shown", [str.lower, lambda pin: pin.replace(":", ""), str], ids=["lower", "bare", "as-is"]
)
def test_the_pinned_certificate_is_trusted_however_the_pin_is_written(
    ftp_server: FtpServer, shown: object
) -> None:
    assert callable(shown)
    pin = shown(ftp_server.fingerprint("ftps"))
    with open_ftp(ftp_server.endpoint("ftps", pin=pin), Limits()) as session:
        assert session.presented == ftp_server.fingerprint("ftps")


def test_without_a_pin_the_session_reports_what_it_saw(ftp_server: FtpServer) -> None:
    with open_ftp(ftp_server.endpoint("other_cert"), Limits()) as session:
        assert session.presented == ftp_server.fingerprint("other_cert")


def test_a_server_without_tls_is_refused_unless_plain_ftp_is_allowed(
    ftp_server: FtpServer,
) -> None:
    before = len(ftp_server.commands("plain_only"))
    with pytest.raises(RemoteRefused) as refused:
        open_ftp(ftp_server.endpoint("plain_only", plain=False), Limits())
    assert refused.value.stage == "trust"
    assert refused.value.message.endswith(
        "the server does not offer TLS; plain FTP must be allowed on the connection"
    )
    assert "USER" not in _new_commands(ftp_server, "plain_only", before)


@pytest.mark.parametrize("variant", ["ftps", "plain_only"])
def test_a_wrong_password_is_refused_at_login(ftp_server: FtpServer, variant: str) -> None:
    with pytest.raises(RemoteRefused) as refused:
        open_ftp(ftp_server.endpoint(variant, password="wrong"), Limits())
    assert refused.value.stage == "login"
    assert refused.value.message.startswith("the server refused the login: 530")
    assert "wrong" not in refused.value.message


def test_a_closed_port_cannot_be_reached(ftp_server: FtpServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = dataclasses.replace(ftp_server.endpoint(), port=port)
    with pytest.raises(RemoteError) as failed:
        open_ftp(endpoint, Limits(connect_timeout=3))
    assert not isinstance(failed.value, RemoteRefused)
    assert failed.value.stage == "reach"
    assert failed.value.message == f"could not reach 127.0.0.1:{port}: connection refused"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


def test_a_server_that_never_greets_times_out_at_reach(
    ftp_server: FtpServer, silent_port: int
) -> None:
    endpoint = dataclasses.replace(ftp_server.endpoint(), port=silent_port)
    started = time.monotonic()
    with pytest.raises(RemoteError) as failed:
        open_ftp(endpoint, Limits(connect_timeout=0.5))
    assert time.monotonic() - started < 3
    assert failed.value.stage == "reach"
    assert failed.value.message == (
        f"could not reach 127.0.0.1:{silent_port}: no answer within 0.5 seconds"
    )


def test_the_checked_address_is_used_and_the_host_name_only_shown(ftp_server: FtpServer) -> None:
    # A name that resolves nowhere: the client must connect to the address the guard
    # checked, never resolve the name again.
    endpoint = dataclasses.replace(ftp_server.endpoint(), host="ftp.partner.invalid")
    with open_ftp(endpoint, Limits()) as session:
        assert session.presented == ftp_server.fingerprint("ftps")
    wrong = dataclasses.replace(endpoint, password="wrong")
    with pytest.raises(RemoteRefused):
        open_ftp(wrong, Limits())
    closed = dataclasses.replace(endpoint, port=1)
    with pytest.raises(RemoteError, match=r"ftp\.partner\.invalid:1 \(127\.0\.0\.1\)"):
        open_ftp(closed, Limits(connect_timeout=2))
