"""Email drop boxes with real clients: swaks, curl and smtplib against `dropyard serve`.

A message is stored whole or not at all; every refusal is an SMTP error the sending
server can show, and the connection's return address (only it) hears why.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dropyard.connections.service import ConnectionView
from dropyard.files.models import File
from dropyard.files.service import FileService
from dropyard.gateway.mail_intake import MailIntake, safe_name
from dropyard.remote.mailer import MemoryMailer
from dropyard.storage.base import Storage
from tests.gateway.conftest import MailSink
from tests.support import OPERATOR, RunningServer, unique, walk_wizard

CSV = (
    b"CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CurrencyCode,Amount\n"
    b"1001,5001,2026-11-20T10:15:00Z,ORD-1,clk-1,USD,59.90\n"
)
CSV2 = CSV + b"1001,5001,2026-11-20T10:16:00Z,ORD-2,clk-2,USD,12.00\n"
PARTNER = "feeds@partner.example"


def email_box(
    server: RunningServer,
    *,
    pattern: str = "*.csv",
    return_email: str | None = None,
    allowed_senders: Sequence[str] = (),
) -> ConnectionView:
    app = server.app
    account_id = app.accounts.create_account(OPERATOR, name=unique("Brand"), kind="brand").id
    details: dict[str, Any] = {"file_pattern": pattern, "allowed_senders": list(allowed_senders)}
    if return_email:
        details["return_email"] = return_email
    created = walk_wizard(
        app,
        OPERATOR,
        account=account_id,
        name=unique("Mail box"),
        direction="inbound",
        data_type="conversions",
        method="email",
        methodology="push",
        details=details,
        credential={},
    )
    assert created.connection.email_address
    return created.connection


def message(
    to: str,
    attachments: Sequence[tuple[str, bytes]] = (),
    *,
    sender: str = PARTNER,
    body: str = "Today's conversions are attached.",
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = "conversions"
    mail.set_content(body)
    for name, content in attachments:
        mail.add_attachment(content, maintype="text", subtype="csv", filename=name)
    return mail


def wire(mail: EmailMessage) -> bytes:
    """The message as it goes over SMTP: lines end in CRLF."""
    return mail.as_bytes(policy=policy.SMTP)


def files_of(server: RunningServer, connection_id: int) -> list[File]:
    with server.app.sessions() as session:
        query = select(File).where(File.connection_id == connection_id).order_by(File.id)
        return list(session.scalars(query))


def folder_names(server: RunningServer, connection_id: int) -> list[str]:
    return sorted(o.key.rsplit("/", 1)[1] for o in server.app.files.list_folder(connection_id))


def spool_leftovers(server: RunningServer) -> list[str]:
    spool = server.settings.spool_dir
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


@pytest.fixture
def client(server: RunningServer) -> Iterator[smtplib.SMTP]:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=20) as smtp:
        yield smtp


def swaks(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.ports['smtp']}", "--timeout", "20", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- accepted -------------------------------------------------------------------------


def test_swaks_attachment_becomes_a_received_file_with_receipt(
    server: RunningServer, tmp_path: Path
) -> None:
    box = email_box(server, allowed_senders=["@partner.example"])
    (tmp_path / "local.csv").write_bytes(CSV)
    result = swaks(
        server,
        "--from",
        PARTNER,
        "--to",
        str(box.email_address),
        "--attach-type",
        "text/csv",
        "--attach-name",
        "orders.csv",
        "--attach",
        f"@{tmp_path / 'local.csv'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 accepted 1 file(s)" in result.stdout
    [row] = files_of(server, box.id)
    assert (row.name, row.source, row.state, row.size, row.sha256) == (
        "orders.csv",
        "email",
        "received",
        len(CSV),
        hashlib.sha256(CSV).hexdigest(),
    )
    assert row.source_address == "127.0.0.1"
    with server.app.files.open_stored(row.id) as handle:
        assert handle.read() == CSV
    assert folder_names(server, box.id) == ["receipt_orders.csv.txt"]
    with server.app.files.open_folder_file(box.id, "receipt_orders.csv.txt") as handle:
        receipt = handle.read().decode()
    assert f"sha256: {hashlib.sha256(CSV).hexdigest()}" in receipt
    events = server.app.audit.recent(account_id=box.account_id)
    received = [e for e in events if e.action == "email.receive"]
    assert [e.detail["files"] for e in received] == [["orders.csv"]]
    assert received[0].actor == f"user:email:{PARTNER}"
    assert received[0].source == "127.0.0.1"


def test_curl_message_with_two_attachments_stores_two_files(
    server: RunningServer, tmp_path: Path
) -> None:
    box = email_box(server)
    eml = tmp_path / "message.eml"
    mail = message(str(box.email_address), [("a.csv", CSV), ("b.csv", CSV2)])
    eml.write_bytes(wire(mail))
    result = subprocess.run(
        [
            "curl",
            "-sS",
            f"smtp://127.0.0.1:{server.ports['smtp']}",
            "--mail-from",
            PARTNER,
            "--mail-rcpt",
            str(box.email_address).upper(),  # addresses match case-insensitively
            "-T",
            str(eml),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = files_of(server, box.id)
    assert [(r.name, r.size, r.sha256) for r in rows] == [
        ("a.csv", len(CSV), hashlib.sha256(CSV).hexdigest()),
        ("b.csv", len(CSV2), hashlib.sha256(CSV2).hexdigest()),
    ]
    assert folder_names(server, box.id) == ["receipt_a.csv.txt", "receipt_b.csv.txt"]


def test_paths_in_attachment_names_are_reduced_to_the_base_name(
    server: RunningServer, client: smtplib.SMTP
) -> None:
    box = email_box(server)
    to = str(box.email_address)
    mail = message(to, [("../../x.csv", CSV), ("C:\\exports\\..\\y.csv", CSV2)])
    client.send_message(mail, PARTNER, [to])
    assert sorted(r.name for r in files_of(server, box.id)) == ["x.csv", "y.csv"]


def test_starttls_with_smtplib(server: RunningServer, client: smtplib.SMTP) -> None:
    code, _greeting = client.ehlo()
    assert code == 250
    assert client.has_extn("starttls")
    assert not client.has_extn("auth")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client.starttls(context=context)
    client.ehlo()
    assert not client.has_extn("auth")
    assert client.sock is not None
    assert isinstance(client.sock, ssl.SSLSocket)
    box = email_box(server)
    to = str(box.email_address)
    client.send_message(message(to, [("tls.csv", CSV)]), PARTNER, [to])
    assert [r.name for r in files_of(server, box.id)] == ["tls.csv"]


def test_greeting_names_no_version(server: RunningServer) -> None:
    smtp = smtplib.SMTP(timeout=20)
    code, banner = smtp.connect("127.0.0.1", server.ports["smtp"])
    smtp.quit()
    assert code == 220
    assert banner.decode().endswith("Dropyard ESMTP")


# -- refused --------------------------------------------------------------------------


def test_one_wrong_attachment_refuses_the_whole_message_and_tells_the_return_address(
    server: RunningServer, client: smtplib.SMTP, mail_sink: MailSink
) -> None:
    back = f"ops-{unique('r').split()[-1]}@brand.example"
    box = email_box(server, return_email=back)
    to = str(box.email_address)
    mail = message(to, [("good.csv", CSV), ("summary.xlsx", b"SECRET-CONTENT")])
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.send_message(mail, PARTNER, [to])
    assert refused.value.smtp_code == 550
    text = refused.value.smtp_error.decode()
    assert text.startswith("5.7.1 ")
    assert "'summary.xlsx'" in text
    assert "*.csv" in text
    assert files_of(server, box.id) == []
    assert folder_names(server, box.id) == []
    notice = mail_sink.wait_for(back)
    body = notice.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert "summary.xlsx" in content
    assert "none of its attachments was stored" in content
    assert "SECRET-CONTENT" not in notice.as_string()
    assert notice["Auto-Submitted"] == "auto-generated"
    # the envelope sender is not told: only the configured return address
    assert mail_sink.sent_to(PARTNER) == []


def test_replies_stay_ascii_and_the_notice_keeps_the_real_name(
    server: RunningServer, client: smtplib.SMTP, mail_sink: MailSink
) -> None:
    back = f"ops-{unique('r').split()[-1]}@brand.example"
    box = email_box(server, return_email=back)
    to = str(box.email_address)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.send_message(message(to, [("données.txt", CSV)]), PARTNER, [to])
    assert refused.value.smtp_code == 550
    assert "'donn?es.txt'" in refused.value.smtp_error.decode("ascii")
    body = mail_sink.wait_for(back).get_body(("plain",))
    assert body is not None
    assert "données.txt" in body.get_content()


def test_sender_not_on_the_allow_list_is_refused(
    server: RunningServer, client: smtplib.SMTP
) -> None:
    box = email_box(server, allowed_senders=["boss@partner.example", "@trusted.example"])
    to = str(box.email_address)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.send_message(message(to, [("a.csv", CSV)]), "someone@else.example", [to])
    code, text = refused.value.recipients[to]
    assert code == 550
    assert text.decode().startswith("5.7.1 sender someone@else.example may not send")
    client.rset()
    client.send_message(message(to, [("a.csv", CSV)]), "Anyone@Trusted.Example", [to])
    client.send_message(message(to, [("b.csv", CSV)]), "boss@partner.example", [to])
    assert [r.name for r in files_of(server, box.id)] == ["a.csv", "b.csv"]


def test_unknown_recipient_is_550(server: RunningServer) -> None:
    result = swaks(
        server,
        "--from",
        PARTNER,
        "--to",
        f"nobody-0000@{server.app.settings.mail_domain}",
        "--body",
        "hello",
    )
    assert result.returncode != 0
    assert "550 5.1.1 no such mailbox" in result.stdout


def test_a_message_goes_to_one_drop_box_only(server: RunningServer, client: smtplib.SMTP) -> None:
    first, second = email_box(server), email_box(server)
    client.ehlo()
    assert client.mail(PARTNER)[0] == 250
    assert client.rcpt(str(first.email_address))[0] == 250
    assert client.rcpt(str(first.email_address).upper())[0] == 250
    code, text = client.rcpt(str(second.email_address))
    assert code == 452
    assert b"one drop box per message" in text
    code, text = client.data(wire(message(str(first.email_address), [("one.csv", CSV)])))
    assert code == 250, text
    assert [r.name for r in files_of(server, first.id)] == ["one.csv"]
    assert files_of(server, second.id) == []


def test_paused_drop_box_takes_no_mail(server: RunningServer, client: smtplib.SMTP) -> None:
    box = email_box(server)
    server.app.connections.pause(OPERATOR, box.id)
    to = str(box.email_address)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.send_message(message(to, [("a.csv", CSV)]), PARTNER, [to])
    assert refused.value.recipients[to][0] == 550
    assert b"paused" in refused.value.recipients[to][1]


def test_oversize_message_is_552_and_nothing_is_stored(
    server: RunningServer, client: smtplib.SMTP
) -> None:
    box = email_box(server)
    to = str(box.email_address)
    big = wire(message(to, [("big.csv", CSV * (1024 * 1024 // len(CSV) + 10))]))
    # declared with SIZE (smtplib does): refused at MAIL
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        client.sendmail(PARTNER, [to], big)
    assert refused.value.smtp_code == 552
    client.rset()
    # undeclared: the whole DATA is read, then refused
    assert client.mail(PARTNER)[0] == 250
    assert client.rcpt(to)[0] == 250
    code, _ = client.data(big)
    assert code == 552
    assert files_of(server, box.id) == []
    assert folder_names(server, box.id) == []
    assert spool_leftovers(server) == []


@pytest.mark.parametrize(
    ("attachments", "expected"),
    [
        ([("receipt_x.csv", CSV)], "'receipt_x.csv' is reserved"),
        ([("ok.csv", CSV), ("../result_y.csv", CSV)], "'result_y.csv' is reserved"),
        ([("../.hidden.csv", CSV)], "may not start with '.'"),
        ([("../", CSV)], "has no usable file name"),
        ([], "has no attachment"),
        ([("same.csv", CSV), ("same.csv", CSV2)], "two attachments are named 'same.csv'"),
    ],
)
def test_bad_messages_are_refused_whole(
    server: RunningServer,
    client: smtplib.SMTP,
    attachments: list[tuple[str, bytes]],
    expected: str,
) -> None:
    box = email_box(server, pattern="*")
    to = str(box.email_address)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        client.send_message(message(to, attachments), PARTNER, [to])
    assert refused.value.smtp_code == 550
    assert expected in refused.value.smtp_error.decode()
    assert files_of(server, box.id) == []
    assert folder_names(server, box.id) == []


# -- all or nothing, in process ------------------------------------------------------


class _FailingSecondPut:
    """Storage whose second stored object fails (a disk or object-store error)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.puts = 0

    def put_file(self, key: str, source: Path) -> None:
        self.puts += 1
        if self.puts == 2:
            raise OSError("disk went away")
        self._storage.put_file(key, source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


def test_a_message_whose_second_attachment_fails_stores_nothing(server: RunningServer) -> None:
    app = server.app
    box = email_box(server)
    to = str(box.email_address)
    storage = _FailingSecondPut(app.storage)
    files = FileService(
        app.sessions,
        storage,
        spool_dir=app.settings.spool_dir,  # type: ignore[arg-type]
        max_file_bytes=app.settings.max_file_bytes,
    )
    intake = MailIntake(
        connections=app.connections,
        files=files,
        audit_log=app.audit,
        mailer=MemoryMailer(),
        mail_domain=app.settings.mail_domain,
    )
    raw = wire(message(to, [("a.csv", CSV), ("b.csv", CSV2), ("c.csv", CSV)]))
    outcome = intake.receive(recipient=to, sender=PARTNER, raw=raw, client="192.0.2.1")
    assert outcome.files == ()
    assert outcome.error is not None
    assert storage.puts == 2
    assert files_of(server, box.id) == []
    assert folder_names(server, box.id) == []
    assert spool_leftovers(server) == []
    inbox = app.settings.files_dir / "inbox" / str(box.id)
    assert not inbox.exists() or list(inbox.iterdir()) == []


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../x.csv", "x.csv"),
        ("..\\..\\x.csv", "x.csv"),
        ("dir/sub\\x\x07.csv", "x.csv"),
        (" spaced.csv ", "spaced.csv"),
    ],
)
def test_safe_name(given: str, kept: str) -> None:
    assert safe_name(given) == kept
