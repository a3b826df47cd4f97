"""The IMAP client against a real Dovecot: list, fetch, flag and delete messages."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from dropyard.remote.base import Limits, NotTrusted, RemoteError, RemoteRefused
from dropyard.remote.imap import attachments, open_mailbox
from tests.imapserver import PASSWORD, ImapServer


def _mail(subject: str, *files: tuple[str, bytes]) -> bytes:
    message = EmailMessage()
    message["From"] = "partner@example.test"
    message["To"] = "drop@dropyard.test"
    message["Subject"] = subject
    message.set_content("Files attached.")
    for name, content in files:
        message.add_attachment(content, maintype="text", subtype="csv", filename=name)
    return message.as_bytes()


def test_messages_are_listed_fetched_and_marked_taken(imap_server: ImapServer) -> None:
    mailbox = imap_server.new_mailbox()
    raws = [_mail(f"day {n}", (f"orders-{n}.csv", b"OrderId\n%d\n" % n)) for n in range(3)]
    uids = [imap_server.append(mailbox, raw) for raw in raws]
    with open_mailbox(imap_server.endpoint(mailbox), Limits()) as box:
        assert box.presented == imap_server.certificate.fingerprint
        assert box.uidvalidity > 0
        listed = list(box.messages())
        assert [m.uid for m in listed] == uids
        assert [m.size for m in listed] == [len(raw.replace(b"\n", b"\r\n")) for raw in raws]
        assert all(abs(m.internal_date - time.time()) < 300 for m in listed)

        raw = box.fetch(uids[0])
        assert attachments(raw) == [("orders-0.csv", b"OrderId\n0\n")]
        assert "\\Seen" not in imap_server.flags(mailbox, uids[0])  # BODY.PEEK[]

        box.mark_taken(uids[0])
        assert [m.uid for m in box.messages()] == uids[1:]
    assert imap_server.flags(mailbox, uids[0]) == {"$DropyardTaken", "\\Seen"}
    with open_mailbox(imap_server.endpoint(mailbox), Limits()) as box:
        assert [m.uid for m in box.messages()] == uids[1:]


def test_plain_imap_works_when_the_connection_allows_it(imap_server: ImapServer) -> None:
    mailbox = imap_server.new_mailbox()
    uid = imap_server.append(mailbox, _mail("plain", ("a.csv", b"x\n")))
    with open_mailbox(imap_server.endpoint(mailbox, plain=True), Limits()) as box:
        assert box.presented == ""
        assert [m.uid for m in box.messages()] == [uid]
        assert attachments(box.fetch(uid)) == [("a.csv", b"x\n")]


def test_a_refused_message_is_marked_and_skipped_afterwards(imap_server: ImapServer) -> None:
    mailbox = imap_server.new_mailbox()
    wrong = imap_server.append(mailbox, _mail("holiday photos", ("beach.jpg", b"\xff\xd8")))
    right = imap_server.append(mailbox, _mail("orders", ("orders.csv", b"OrderId\n1\n")))
    with open_mailbox(imap_server.endpoint(mailbox), Limits()) as box:
        for message in box.messages():
            names = [name for name, _ in attachments(box.fetch(message.uid))]
            if any(name.endswith(".csv") for name in names):
                box.mark_taken(message.uid)
            else:
                box.mark_refused(message.uid)
    assert imap_server.flags(mailbox, wrong) == {"$DropyardRefused"}  # still unread for people
    assert imap_server.flags(mailbox, right) == {"$DropyardTaken", "\\Seen"}
    with open_mailbox(imap_server.endpoint(mailbox), Limits()) as box:
        assert list(box.messages()) == []


def test_delete_expunges_only_that_message(imap_server: ImapServer) -> None:
    mailbox = imap_server.new_mailbox()
    first = imap_server.append(mailbox, _mail("one"))
    second = imap_server.append(mailbox, _mail("two"))
    # A message someone else marked \Deleted is not listed, and not expunged by us.
    marked = imap_server.append(mailbox, _mail("three"), flags="(\\Deleted)")
    with open_mailbox(imap_server.endpoint(mailbox), Limits()) as box:
        assert [m.uid for m in box.messages()] == [first, second]
        box.delete(first)
        assert [m.uid for m in box.messages()] == [second]
    assert imap_server.uids(mailbox) == [second, marked]


def test_a_message_over_max_file_bytes_is_refused(imap_server: ImapServer) -> None:
    mailbox = imap_server.new_mailbox()
    uid = imap_server.append(mailbox, _mail("big", ("big.csv", b"x" * 5000)))
    with open_mailbox(imap_server.endpoint(mailbox), Limits(max_file_bytes=2000)) as box:
        size = next(iter(box.messages())).size
        with pytest.raises(RemoteRefused) as refused:
            box.fetch(uid)
        assert refused.value.message == (
            f"message {uid} is {size} bytes, more than the limit of 2000 bytes"
        )
        with pytest.raises(RemoteRefused, match="no longer in the mailbox"):
            box.fetch(uid + 100)
    assert imap_server.flags(mailbox, uid) == set()


def test_a_mailbox_past_max_listing_is_refused(imap_server: ImapServer) -> None:
    mailbox = imap_server.new_mailbox()
    for n in range(4):
        imap_server.append(mailbox, _mail(f"m{n}"))
    with (
        open_mailbox(imap_server.endpoint(mailbox), Limits(max_listing=3)) as box,
        pytest.raises(RemoteRefused, match="more than 3 messages"),
    ):
        list(box.messages())


def test_a_mailbox_name_with_non_ascii_characters_and_spaces(imap_server: ImapServer) -> None:
    with imap_server.client() as client:
        answer, _ = client.create('"&ANw-bergabe &- Co"')  # modified UTF-7 of "Übergabe & Co"
        assert answer == "OK"
    uid = imap_server.append('"&ANw-bergabe &- Co"', _mail("umlaut"))
    with open_mailbox(imap_server.endpoint("Übergabe & Co"), Limits()) as box:
        assert [m.uid for m in box.messages()] == [uid]


def test_a_missing_mailbox_is_refused_at_the_folder_stage(imap_server: ImapServer) -> None:
    with pytest.raises(RemoteRefused) as refused:
        open_mailbox(imap_server.endpoint("No Such Box"), Limits())
    assert refused.value.stage == "folder"
    assert refused.value.message.startswith("the mailbox 'No Such Box' cannot be opened:")
    assert "Mailbox doesn't exist" in refused.value.message


@pytest.mark.parametrize("plain", [False, True], ids=["imaps", "imap"])
def test_a_wrong_password_is_refused_at_login(imap_server: ImapServer, plain: bool) -> None:
    with pytest.raises(RemoteRefused) as refused:
        open_mailbox(imap_server.endpoint(plain=plain, password="wrong-" + PASSWORD), Limits())
    assert refused.value.stage == "login"
    assert refused.value.message == (
        "the server refused the login: [AUTHENTICATIONFAILED] Authentication failed."
    )


def test_a_certificate_other_than_the_pinned_one_hears_no_login(
    imap_server: ImapServer,
) -> None:
    seen = len(imap_server.log)
    pin = "AB:" * 31 + "CD"
    with pytest.raises(NotTrusted) as refused:
        open_mailbox(imap_server.endpoint(pin=pin), Limits())
    assert refused.value.stage == "trust"
    assert refused.value.presented == imap_server.certificate.fingerprint
    deadline = time.monotonic() + 5
    while "no auth attempts" not in imap_server.log[seen:]:
        assert time.monotonic() < deadline, "dovecot did not log the dropped connection"
        time.sleep(0.1)
    assert "Login:" not in imap_server.log[seen:]


def test_the_pinned_certificate_is_trusted(imap_server: ImapServer) -> None:
    pin = imap_server.certificate.fingerprint.replace(":", "").lower()
    with open_mailbox(imap_server.endpoint(pin=pin), Limits()) as box:
        assert box.presented == imap_server.certificate.fingerprint


def test_a_closed_port_cannot_be_reached(imap_server: ImapServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = dataclasses.replace(imap_server.endpoint(), port=port)
    with pytest.raises(RemoteError) as failed:
        open_mailbox(endpoint, Limits())
    assert failed.value.stage == "reach"
    assert failed.value.message == f"could not reach 127.0.0.1:{port}: connection refused"


@pytest.fixture
def silent_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("plain", [False, True], ids=["imaps", "imap"])
def test_a_server_that_never_answers_times_out(
    imap_server: ImapServer, silent_port: int, plain: bool
) -> None:
    endpoint = dataclasses.replace(imap_server.endpoint(plain=plain), port=silent_port)
    started = time.monotonic()
    with pytest.raises(RemoteError) as failed:
        open_mailbox(endpoint, Limits(connect_timeout=0.5))
    assert time.monotonic() - started < 3
    assert failed.value.stage == "reach"
    assert failed.value.message.endswith("no answer within 0.5 seconds")
