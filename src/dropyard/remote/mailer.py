"""Dropyard's own outgoing mail: the `Mailer` seam and its implementations.

Every mail Dropyard sends (notices to a connection's return address; later receipts,
results and email deliveries) goes through a `Mailer`. `SmtpMailer` hands it to the relay
from the settings; without a relay, `LogMailer` records that a message was not sent, and
never its body. `MemoryMailer` keeps what was sent, for tests.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from dropyard.errors import Invalid, Terminal, Transient
from dropyard.settings import Settings

log = logging.getLogger(__name__)

# (file name, content, MIME type such as "text/csv")
Attachment = tuple[str, bytes, str]


class Mailer(Protocol):
    def send(
        self,
        to: Sequence[str],
        subject: str,
        body: str,
        attachments: Sequence[Attachment] = (),
    ) -> None:
        """Send one plain-text message, or raise Transient (retry) or Terminal."""


@dataclass(frozen=True)
class Relay:
    """Where outgoing mail is handed over (submission to a smarthost)."""

    host: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


def compose(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    body: str,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    if not to:
        raise Invalid("a message needs at least one recipient", field="to")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    # Header values may not carry line breaks; a subject built from user input might.
    message["Subject"] = " ".join(subject.split())
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    # RFC 3834: machine-generated, so well-behaved autoresponders stay quiet (no loops).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    for name, content, mime_type in attachments:
        maintype, _, subtype = mime_type.partition("/")
        message.add_attachment(
            content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=name,
        )
    return message


class SmtpMailer:
    """Sends through an SMTP relay with smtplib: STARTTLS (verified) and login if set."""

    def __init__(self, relay: Relay, *, sender: str, context: ssl.SSLContext | None = None) -> None:
        self._relay = relay
        self._sender = sender
        self._context = context or ssl.create_default_context()

    def send(
        self,
        to: Sequence[str],
        subject: str,
        body: str,
        attachments: Sequence[Attachment] = (),
    ) -> None:
        message = compose(
            sender=self._sender, to=to, subject=subject, body=body, attachments=attachments
        )
        relay = self._relay
        where = f"mail relay {relay.host}:{relay.port}"
        try:
            with smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout) as client:
                client.ehlo()
                if relay.starttls:
                    client.starttls(context=self._context)
                    client.ehlo()
                if relay.username:
                    client.login(relay.username, relay.password or "")
                refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            refused_all = ", ".join(exc.recipients)
            raise Terminal(f"{where} refused every recipient: {refused_all}") from None
        except smtplib.SMTPResponseException as exc:
            error_text = exc.smtp_error
            if isinstance(error_text, bytes):
                error_text = error_text.decode("utf-8", "replace")
            text = error_text[:200]
            error = Transient if 400 <= exc.smtp_code < 500 else Terminal
            raise error(f"{where} answered {exc.smtp_code} {text}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise Transient(f"could not send through {where}: {exc}") from None
        if refused:
            log.warning("%s refused some recipients: %s", where, ", ".join(refused))


class LogMailer:
    """No relay configured: say in the log that a message was not sent (never its body)."""

    def send(
        self,
        to: Sequence[str],
        subject: str,
        body: str,
        attachments: Sequence[Attachment] = (),
    ) -> None:
        log.warning(
            "no mail relay is configured (DROPYARD_SMTP_RELAY_HOST); a message to %s "
            "with subject %r was not sent",
            ", ".join(to),
            subject,
        )


@dataclass
class MemoryMailer:
    """Keeps every message it is given, for tests."""

    sent: list[EmailMessage] = field(default_factory=list)

    def send(
        self,
        to: Sequence[str],
        subject: str,
        body: str,
        attachments: Sequence[Attachment] = (),
    ) -> None:
        self.sent.append(
            compose(
                sender="dropyard@memory.invalid",
                to=to,
                subject=subject,
                body=body,
                attachments=attachments,
            )
        )


def build_mailer(settings: Settings) -> Mailer:
    if not settings.smtp_relay_host:
        return LogMailer()
    relay = Relay(
        host=settings.smtp_relay_host,
        port=settings.smtp_relay_port,
        starttls=settings.smtp_relay_starttls,
        username=settings.smtp_relay_username,
        password=settings.smtp_relay_password,
    )
    return SmtpMailer(relay, sender=settings.resolved_mail_from)
