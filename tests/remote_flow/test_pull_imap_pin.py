"""IMAPS pulls pin the mailbox server's certificate as FTPS pulls do: the review shows it,
create pins it, and a server presenting another certificate hears no LOGIN (so no
password) until an admin approves exactly what it presents. Plain IMAP has nothing to pin
and runs only because the connection says plain IMAP.

The changed certificate is real: a Dovecot of this module's own gets a new certificate
and re-reads its configuration (SIGHUP), as a partner renewing it would, or a man in the
middle presenting his.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from dropyard.connections import trust
from dropyard.errors import Invalid
from dropyard.remote.service import RemoteLogin
from dropyard.remote.wire import certificate_fingerprint
from tests.cli.conftest import Cli, make_cli
from tests.ftpserver import make_certificate
from tests.imapserver import PASSWORD, USER, ImapServer, start_imap_server, stop_imap_server
from tests.imapserver import imap_server as imap_server  # the session fixture
from tests.remote_flow.conftest import Flow
from tests.support import OPERATOR, unique


def mail(name: str, content: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = "feeds@partner.example"
    message["To"] = USER
    message["Subject"] = "conversions"
    message.set_content("Attached.")
    message.add_attachment(content, maintype="text", subtype="csv", filename=name)
    return message.as_bytes()


def untouched(flags: set[str]) -> bool:
    """No session selected the mailbox since the message came (it is still \\Recent), so
    nobody logged in, and nothing flagged it."""
    return flags == {"\\Recent"}


def presented(server: ImapServer) -> str:
    """The fingerprint the IMAPS port presents right now, read with a bare TLS client."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        return certificate_fingerprint(tls.getpeercert(binary_form=True) or b"")


def rotate_certificate(server: ImapServer) -> str:
    """A new certificate on the same host and port: the new fingerprint, once served."""
    server.certificate = make_certificate(server.directory / "tls")
    server.process.send_signal(signal.SIGHUP)  # Dovecot re-reads its configuration
    deadline = time.monotonic() + 10
    while presented(server) != server.certificate.fingerprint:
        assert time.monotonic() < deadline, "Dovecot kept its old certificate"
        time.sleep(0.05)
    return server.certificate.fingerprint


@pytest.fixture(scope="module")
def renewing_imap() -> Iterator[ImapServer]:
    """A Dovecot whose certificate tests change (the session one keeps its own)."""
    server = start_imap_server()
    try:
        yield server
    finally:
        stop_imap_server(server)


def imap_details(server: ImapServer, mailbox: str, **more: object) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "port": server.ports["imaps"],
        "folder": mailbox,
        "file_pattern": "*.csv",
        **more,
    }


def imap_pull(flow: Flow, server: ImapServer, mailbox: str, **more: object) -> int:
    return flow.connection(
        method="email",
        methodology="pull",
        details=imap_details(server, mailbox, **more),
        username=USER,
        password=PASSWORD,
    )


def test_a_changed_certificate_refuses_the_run_until_it_is_approved(
    flow: Flow, renewing_imap: ImapServer
) -> None:
    server = renewing_imap
    mailbox = server.new_mailbox()
    old = server.certificate.fingerprint
    connection_id = imap_pull(flow, server, mailbox, certificate_fingerprint=old)
    first = server.append(mailbox, mail("a.csv", flow.csv("ORD-1")))
    assert flow.app.remote.pull(connection_id).taken == ("a.csv",)
    second = server.append(mailbox, mail("b.csv", flow.csv("ORD-2")))

    new = rotate_certificate(server)
    refused = flow.app.remote.pull(connection_id)

    assert refused.state == "failed"
    assert f"the server's certificate changed: it presented {new}, {old} is pinned" in (
        refused.reason
    )
    assert untouched(server.flags(mailbox, second))  # not read, not flagged: no login happened
    assert [f.name for f in flow.files(connection_id)] == ["a.csv"]
    view = flow.app.connections.get(OPERATOR, connection_id)
    assert view.presented_fingerprint == new
    assert view.remote_error is not None and new in view.remote_error
    notice = trust.notice(view)
    assert notice is not None
    assert f"dropyard connections approve {connection_id} --fingerprint {new}" in notice
    # A connection test says the same, and sends no login either.
    test = flow.app.remote.test(OPERATOR, connection_id)
    verdicts = {v.check: v for v in test.verdicts}
    assert (verdicts["trusted"].ok, verdicts["login"].ok) == (False, False)
    assert f"the server presents the certificate {new}, but {old} is pinned" in (
        verdicts["trusted"].detail
    )
    assert test.fingerprint == new
    # Still refused on the next run, whatever the schedule: only an approval lifts it.
    assert flow.app.remote.pull(connection_id).state == "failed"

    with pytest.raises(Invalid) as wrong:
        flow.app.remote.approve(OPERATOR, connection_id, fingerprint=old)
    assert f"is not the certificate the server presents now ({new})" in wrong.value.message
    flow.app.remote.approve(OPERATOR, connection_id, fingerprint=new.replace(":", "").lower())

    approved = flow.app.connections.get(OPERATOR, connection_id)
    assert approved.details["certificate_fingerprint"] == new
    assert (approved.remote_error, approved.presented_fingerprint) == (None, None)
    assert trust.notice(approved) is None
    assert flow.app.remote.pull(connection_id).taken == ("b.csv",)
    assert "$DropyardTaken" in server.flags(mailbox, first)
    assert "$DropyardTaken" in server.flags(mailbox, second)


def test_an_unpinned_imaps_connection_moves_nothing_until_approved(
    flow: Flow, imap_server: ImapServer
) -> None:
    """Made while the server could not be reached (or through the API without `pin`)."""
    mailbox = imap_server.new_mailbox()
    uid = imap_server.append(mailbox, mail("a.csv", flow.csv("ORD-1")))
    connection_id = imap_pull(flow, imap_server, mailbox)
    fingerprint = imap_server.certificate.fingerprint

    refused = flow.app.remote.pull(connection_id)

    assert refused.state == "failed"
    assert "certificate is not pinned yet: test the connection and approve" in refused.reason
    assert untouched(imap_server.flags(mailbox, uid))
    view = flow.app.connections.get(OPERATOR, connection_id)
    assert trust.notice(view) == (
        f"certificate not pinned yet: run `dropyard connections test {connection_id}` and approve"
    )
    test = flow.app.remote.test(OPERATOR, connection_id)
    assert test.fingerprint == fingerprint
    trusted = next(v for v in test.verdicts if v.check == "trusted")
    assert not trusted.ok
    assert f"not pinned yet: the server presents {fingerprint}" in trusted.detail

    flow.app.remote.approve(OPERATOR, connection_id, fingerprint=fingerprint)

    assert flow.app.remote.pull(connection_id).taken == ("a.csv",)


def test_plain_imap_has_nothing_to_pin_and_runs_because_the_connection_says_so(
    flow: Flow, imap_server: ImapServer
) -> None:
    mailbox = imap_server.new_mailbox()
    imap_server.append(mailbox, mail("a.csv", flow.csv("ORD-1")))
    details = imap_details(imap_server, mailbox, plain_imap=True, port=imap_server.ports["imap"])
    assert trust.pin_detail("email", "pull", details) is None

    report = flow.app.remote.probe(
        OPERATOR,
        account=flow.account_id,
        method="email",
        methodology="pull",
        details=details,
        credential=RemoteLogin(username=USER, password=PASSWORD),
    )

    assert report.ok, report.verdicts
    assert report.fingerprint is None
    trusted = next(v for v in report.verdicts if v.check == "trusted")
    assert trusted.detail == (
        "plain IMAP: no certificate to check (allowed: the connection says so)"
    )
    assert trust.fingerprint_line("email", "pull", details, report.fingerprint) is None
    connection_id = imap_pull(
        flow, imap_server, mailbox, plain_imap=True, port=imap_server.ports["imap"]
    )
    assert trust.notice(flow.app.connections.get(OPERATOR, connection_id)) is None
    assert flow.app.remote.pull(connection_id).taken == ("a.csv",)
    with pytest.raises(Invalid) as nothing:
        flow.app.remote.approve(
            OPERATOR, connection_id, fingerprint=imap_server.certificate.fingerprint
        )
    assert "has no host key or certificate to approve" in nothing.value.message


def test_a_malformed_certificate_fingerprint_is_refused_by_name(
    flow: Flow, imap_server: ImapServer
) -> None:
    mailbox = imap_server.new_mailbox()
    with pytest.raises(Invalid) as refused:
        imap_pull(flow, imap_server, mailbox, certificate_fingerprint="SHA256:not-a-cert")
    assert refused.value.errors["details.certificate_fingerprint"] == (
        "certificate_fingerprint 'SHA256:not-a-cert' must be a SHA-256 fingerprint: "
        "64 hex digits, with or without colons"
    )


def test_a_typed_fingerprint_the_server_does_not_present_hears_no_login(
    flow: Flow, imap_server: ImapServer
) -> None:
    mailbox = imap_server.new_mailbox()
    uid = imap_server.append(mailbox, mail("a.csv", flow.csv("ORD-1")))
    typed = "AB:" * 31 + "CD"
    details = imap_details(imap_server, mailbox, certificate_fingerprint=typed)
    fingerprint = imap_server.certificate.fingerprint

    report = flow.app.remote.probe(
        OPERATOR,
        account=flow.account_id,
        method="email",
        methodology="pull",
        details=details,
        credential=RemoteLogin(username=USER, password=PASSWORD),
    )

    assert [(v.check, v.ok) for v in report.verdicts][:3] == [
        ("reachable", True),
        ("trusted", False),
        ("login", False),
    ]
    assert report.verdicts[2].detail == "not checked: trusted failed"
    label, line = trust.fingerprint_line("email", "pull", details, report.fingerprint) or ("", "")
    assert (label, line.split(":", 1)[0]) == ("Certificate", fingerprint.split(":", 1)[0])
    assert f"DIFFERS from the fingerprint you entered ({typed})" in line
    connection_id = imap_pull(flow, imap_server, mailbox, certificate_fingerprint=typed)
    result = flow.app.remote.pull(connection_id)
    assert result.state == "failed"
    assert f"it presented {fingerprint}" in result.reason
    assert untouched(imap_server.flags(mailbox, uid))


# -- the CLI: what a user sees at review, and what create pins ---------------------------


def _cli(flow: Flow) -> Cli:
    settings = flow.app.settings
    cli = make_cli(settings.data_dir, settings.resolved_database_url)
    cli.env["DROPYARD_ALLOW_NETWORKS"] = json.dumps(settings.allow_networks)
    return cli


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # a thin edge
def test_the_cli_review_shows_the_certificate_and_create_pins_only_an_accepted_one(
    flow: Flow, imap_server: ImapServer
) -> None:
    mailbox = imap_server.new_mailbox()
    imap_server.append(mailbox, mail("a.csv", flow.csv("ORD-1")))
    fingerprint = imap_server.certificate.fingerprint
    cli = _cli(flow)
    args = [
        "connections", "create", "--account", str(flow.account_id),
        "--name", unique("Mailbox pull"), "--direction", "inbound",
        "--data-type", "conversions", "--method", "email", "--methodology", "pull",
        "--host", "127.0.0.1", "--port", str(imap_server.ports["imaps"]),
        "--folder", mailbox, "--file-pattern", "*.csv",
        "--new-credential-kind", "password", "--username", USER, "--password-stdin",
    ]  # fmt: skip

    refused = cli.run(*args, stdin=PASSWORD, code=2)

    assert f"Certificate: {fingerprint} (will be pinned)" in refused.stdout, refused.stdout
    shown = [" ".join(line.split()) for line in refused.stdout.splitlines()]
    assert (
        "ok trusted: the server presents the certificate "
        + fingerprint
        + ("; it is pinned when the connection is created")
        in shown
    )
    assert f"To trust it, add --accept-host-key {fingerprint}" in refused.stderr
    assert PASSWORD not in refused.stdout + refused.stderr

    made = cli.json(*args, "--accept-host-key", fingerprint, stdin=PASSWORD)

    assert made["details"]["certificate_fingerprint"] == fingerprint
    assert made["trust"] is None
    ran = cli.run("connections", "run", str(made["id"]))
    assert ran.stdout.strip() == "took 1 file (a.csv)"
