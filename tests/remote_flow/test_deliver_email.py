"""Delivering by email through the relay (aiosmtpd here): attached up to the connection's
limit, else a signed link the web server honours for 7 days and no longer."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from dropyard.accounts.models import AuditEvent
from dropyard.credentials.secrets import load_or_create_master_key
from dropyard.db.base import utcnow
from dropyard.remote.links import LinkExpired, LinkSigner, derive_link_key
from dropyard.remote.mailer import Relay, SmtpMailer
from dropyard.web.api.app import create_app
from tests.gateway.conftest import MailSink
from tests.remote_flow.conftest import Clock, Flow, file_row, generated

LINK = re.compile(r"http://127\.0\.0\.1:8080(/d/[A-Za-z0-9_-]+)")
MB = 1024 * 1024


def email_deliver(flow: Flow, to: str, **more: object) -> int:
    return flow.connection(
        method="email",
        methodology="deliver",
        details={"recipients": [to], "report": "performance_by_day", **more},
    )


@pytest.fixture
def web(flow: Flow) -> Iterator[TestClient]:
    with TestClient(create_app(flow.app)) as client:
        yield client


def test_a_small_file_is_mailed_as_an_attachment(flow: Flow, mail_sink: MailSink) -> None:
    to = f"reports-{flow.account_id}-{id(flow)}@partner.example"
    connection_id = email_deliver(flow, to)
    made = flow.app.outbound.run(connection_id)
    assert made.file is not None

    result = flow.app.remote.deliver(made.file.id)

    assert result.state == "delivered"
    assert result.reason == f"delivered by email to {to} (attached)"
    message = mail_sink.wait_for(to)
    (attachment,) = list(message.iter_attachments())  # type: ignore[attr-defined]
    assert attachment.get_filename() == made.file.name
    with flow.app.files.open_stored(made.file.id) as stored:
        assert attachment.get_content().encode() == stored.read()
    assert flow.history(made.file.id)[-1] == result.reason


def test_a_big_file_is_mailed_as_a_link_that_downloads_over_http(
    flow: Flow, mail_sink: MailSink, web: TestClient
) -> None:
    to = f"big-{flow.account_id}-{id(flow)}@partner.example"
    connection_id = email_deliver(flow, to, max_attachment_mb=1)
    data = b"id,value\n" + b"1,2\n" * (MB // 4 + 10)
    file_id = generated(flow, connection_id, "big report.csv", data)

    result = flow.app.remote.deliver(file_id)

    assert result.state == "delivered"
    assert "(as a link valid until " in result.reason
    message = mail_sink.wait_for(to)
    assert list(message.iter_attachments()) == []  # type: ignore[attr-defined]
    body = message.get_body(("plain",)).get_content()  # type: ignore[attr-defined]
    found = LINK.search(body)
    assert found, body
    answer = web.get(found.group(1))
    assert answer.status_code == 200
    assert answer.content == data
    assert answer.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''big%20report.csv" in answer.headers["content-disposition"]
    assert answer.headers["cache-control"] == "no-store"
    with flow.app.sessions() as session:
        downloads = session.scalars(
            select(AuditEvent.action).where(AuditEvent.target == f"file:{file_id}")
        ).all()
    assert "file.download" in downloads

    # A changed character anywhere makes it not a link at all; nothing is said about why.
    token = found.group(1).removeprefix("/d/")
    tampered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    refused = web.get(f"/d/{tampered}")
    assert refused.status_code == 404
    assert refused.text == "This download link is not valid.\n"
    assert web.get("/d/not-a-token").status_code == 404


def test_an_expired_link_is_gone_and_a_link_to_another_file_is_refused(
    flow: Flow, web: TestClient
) -> None:
    connection_id = email_deliver(flow, "x@partner.example", max_attachment_mb=1)
    file_id = generated(flow, connection_id, "r.csv", b"a\n" * (MB // 2 + 1))
    assert flow.app.remote.deliver(file_id).state == "delivered"
    master = load_or_create_master_key(
        flow.app.settings.keys_dir / "master.key", flow.app.settings.master_key
    )
    signer = LinkSigner(derive_link_key(master))

    expired = web.get(f"/d/{signer.sign(file_id, utcnow() - timedelta(seconds=1))}")

    assert expired.status_code == 410
    assert expired.text == "This download link has expired. Ask the sender for the file.\n"
    later = LinkSigner(derive_link_key(master), clock=Clock(utcnow() + timedelta(days=8)))
    token = signer.sign(file_id, utcnow() + timedelta(days=7))
    assert signer.verify(token) == file_id
    with pytest.raises(LinkExpired):  # seven days on, the same link is past its time
        later.verify(token)
    # Signed by the master key itself (or any other key), a link is not genuine.
    forged = LinkSigner(master).sign(file_id, utcnow() + timedelta(days=1))
    assert web.get(f"/d/{forged}").status_code == 404
    # A genuine link to a file that is not an emailed delivery opens nothing.
    other = generated(flow, connection_id, "waiting.csv", b"a\n")  # generated, not delivered
    assert web.get(f"/d/{signer.sign(other, utcnow() + timedelta(days=1))}").status_code == 404
    hosted_inbound = signer.sign(10_000_000, utcnow() + timedelta(days=1))
    assert web.get(f"/d/{hosted_inbound}").status_code == 404


def test_a_relay_that_does_not_answer_leaves_the_file_for_another_try(flow: Flow) -> None:
    connection_id = email_deliver(flow, "x@partner.example")
    file_id = generated(flow, connection_id, "r.csv", b"a\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    mailer = SmtpMailer(Relay("127.0.0.1", closed, starttls=False, timeout=5), sender="d@x.test")

    result = flow.service(mailer=mailer).deliver(file_id)

    assert result.state == "generated"
    assert result.next_try_at is not None
    assert f"could not send through mail relay 127.0.0.1:{closed}" in result.reason
    assert file_row(flow, file_id).state == "generated"
