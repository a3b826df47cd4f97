"""Attachments as partners' mail programs send them: names in RFC 2231 or encoded words,
nested parts, inline files, forwarded messages."""

from __future__ import annotations

import base64
from email.message import EmailMessage

from dropyard.remote.imap import attachments

CSV = b"OrderId;Amount\n1;9.99\n"


def _raw(body: str) -> bytes:
    return body.replace("\n", "\r\n").encode()


def test_rfc2231_and_encoded_word_names_are_decoded() -> None:
    encoded = base64.b64encode(CSV).decode()
    raw = _raw(
        f"""From: partner@example.test
To: drop@dropyard.test
Subject: files
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

see attached
--b1
Content-Type: text/csv
Content-Disposition: attachment; filename*=utf-8''Bestellungen%20M%C3%A4rz.csv
Content-Transfer-Encoding: base64

{encoded}
--b1
Content-Type: text/csv; name="=?utf-8?q?commandes_f=C3=A9vrier=2Ecsv?="
Content-Disposition: attachment; filename="=?utf-8?q?commandes_f=C3=A9vrier=2Ecsv?="
Content-Transfer-Encoding: base64

{encoded}
--b1--
"""
    )
    assert attachments(raw) == [("Bestellungen März.csv", CSV), ("commandes février.csv", CSV)]


def test_nested_inline_and_forwarded_parts_with_names_are_found() -> None:
    forwarded = EmailMessage()
    forwarded["Subject"] = "original"
    forwarded.set_content("the original mail")
    forwarded.add_attachment(b"inner", maintype="text", subtype="csv", filename="inner.csv")

    message = EmailMessage()
    message["Subject"] = "Fwd: original"
    message.set_content("plain text")
    message.add_alternative("<p>html</p>", subtype="html")
    message.add_attachment(CSV, maintype="text", subtype="csv", filename="outer.csv")
    message.add_attachment(forwarded)
    message.add_attachment(
        b"\x89PNG", maintype="image", subtype="png", filename="logo.png", disposition="inline"
    )
    assert attachments(message.as_bytes()) == [
        ("outer.csv", CSV),
        ("inner.csv", b"inner"),
        ("logo.png", b"\x89PNG"),
    ]


def test_a_message_without_attachments_has_none() -> None:
    message = EmailMessage()
    message["Subject"] = "just text"
    message.set_content("no files here")
    assert attachments(message.as_bytes()) == []
    assert attachments(b"not a mail at all") == []
