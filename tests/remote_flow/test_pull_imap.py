"""Pulling from a partner's mailbox (Dovecot over IMAPS): a message whose attachments all
match becomes files; one with a non-matching attachment is refused whole, flagged, and not
looked at again."""

from __future__ import annotations

from email.message import EmailMessage

from dropyard.remote.service import RemoteLogin
from tests.imapserver import PASSWORD, USER, ImapServer
from tests.imapserver import imap_server as imap_server  # the session fixture
from tests.remote_flow.conftest import Flow
from tests.support import OPERATOR


def mail(*attachments: tuple[str, bytes]) -> bytes:
    message = EmailMessage()
    message["From"] = "feeds@partner.example"
    message["To"] = USER
    message["Subject"] = "conversions"
    message.set_content("Attached.")
    for name, content in attachments:
        message.add_attachment(content, maintype="text", subtype="csv", filename=name)
    return message.as_bytes()


def imap_pull(flow: Flow, server: ImapServer, mailbox: str, **more: object) -> int:
    return flow.connection(
        method="email",
        methodology="pull",
        details={
            "host": "127.0.0.1",
            "port": server.ports["imaps"],
            "folder": mailbox,
            "file_pattern": "*.csv",
            "certificate_fingerprint": server.certificate.fingerprint,
            **more,
        },
        username=USER,
        password=PASSWORD,
    )


def test_matching_messages_are_imported_and_a_non_matching_one_is_refused_once(
    flow: Flow, imap_server: ImapServer
) -> None:
    mailbox = imap_server.new_mailbox()
    good = imap_server.append(
        mailbox, mail(("a.csv", flow.csv("ORD-1")), ("b.csv", flow.csv("ORD-2")))
    )
    bad = imap_server.append(mailbox, mail(("c.csv", flow.csv("ORD-3")), ("invoice.pdf", b"%PDF")))
    connection_id = imap_pull(flow, imap_server, mailbox)
    run_id = flow.scheduled_run(connection_id)

    result = flow.app.remote.pull(connection_id, run_id=run_id)

    assert result.state == "done"
    assert result.taken == ("a.csv", "b.csv")
    assert f"message {bad} refused: attachment 'invoice.pdf' does not match '*.csv'" in (
        result.reason
    )
    assert flow.run_outcome(run_id)[1] == result.reason
    files = flow.files(connection_id)
    assert [(f.name, f.source) for f in files] == [("a.csv", "imap-pull"), ("b.csv", "imap-pull")]
    assert flow.process_all(connection_id) == ["processed", "processed"]
    assert "$DropyardTaken" in imap_server.flags(mailbox, good)
    assert "$DropyardRefused" in imap_server.flags(mailbox, bad)

    again = flow.app.remote.pull(connection_id)

    assert again.state == "empty"
    assert "refused" not in again.reason  # the refused message is not looked at again
    assert len(flow.files(connection_id)) == 2


def test_taken_messages_are_deleted_when_the_connection_says_so(
    flow: Flow, imap_server: ImapServer
) -> None:
    mailbox = imap_server.new_mailbox()
    imap_server.append(mailbox, mail(("a.csv", flow.csv("ORD-1"))))
    connection_id = imap_pull(flow, imap_server, mailbox, delete_after_pull=True)

    assert flow.app.remote.pull(connection_id).taken == ("a.csv",)
    assert imap_server.uids(mailbox) == []


def test_a_wrong_mailbox_password_fails_the_run(flow: Flow, imap_server: ImapServer) -> None:
    mailbox = imap_server.new_mailbox()
    connection_id = flow.connection(
        method="email",
        methodology="pull",
        details={
            "host": "127.0.0.1",
            "port": imap_server.ports["imaps"],
            "folder": mailbox,
            "file_pattern": "*.csv",
            "certificate_fingerprint": imap_server.certificate.fingerprint,
        },
        username=USER,
        password="wrong",
    )

    result = flow.app.remote.pull(connection_id)

    assert result.state == "failed"
    assert "refused the login" in result.reason
    assert "wrong" not in result.reason.replace("refused", "")


def test_a_mailbox_test_looks_at_a_few_messages_without_taking_them(
    flow: Flow, imap_server: ImapServer
) -> None:
    mailbox = imap_server.new_mailbox()
    uid = imap_server.append(mailbox, mail(("a.csv", flow.csv("ORD-1"))))
    details = {
        "host": "127.0.0.1",
        "port": imap_server.ports["imaps"],
        "folder": mailbox,
        "file_pattern": "*.csv",
    }

    report = flow.app.remote.probe(
        OPERATOR,
        account=flow.account_id,
        method="email",
        methodology="pull",
        details=details,
        credential=RemoteLogin(username=USER, password=PASSWORD),
    )
    wrong = flow.app.remote.probe(
        OPERATOR,
        account=flow.account_id,
        method="email",
        methodology="pull",
        details=details,
        credential=RemoteLogin(username=USER, password="wrong"),
    )

    assert [(v.check, v.ok) for v in report.verdicts] == [
        ("reachable", True),
        ("trusted", True),
        ("login", True),
        ("folder readable", True),
        ("pattern matches", True),
    ]
    assert report.sample == ("a.csv",)
    assert imap_server.flags(mailbox, uid) == set()  # not even \Seen
    assert report.fingerprint == imap_server.certificate.fingerprint
    assert [(v.check, v.ok) for v in wrong.verdicts][:3] == [
        ("reachable", True),
        ("trusted", True),
        ("login", False),
    ]
