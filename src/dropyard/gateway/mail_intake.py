"""Inbound email drop boxes without the protocol: who may mail a connection, which
attachments a message carries, and storing all of them or none.

The SMTP adapter asks `recipient()` at RCPT time and hands the whole message to
`receive()` at DATA time. A message is checked completely before anything is stored
(attachments found, names made safe, every name against the connection's pattern), then
each attachment goes through `FileService.commit` like any other upload. A refusal is
answered to the sending server and, for content problems, told to the connection's
return address: never to the envelope sender, which anyone can forge (backscatter).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from fnmatch import fnmatchcase

from dropyard.accounts.actors import Actor
from dropyard.accounts.audit import AuditLog
from dropyard.connections.service import ConnectionService, ConnectionView
from dropyard.errors import Conflict, DropyardError, Forbidden, Invalid, NotFound, Transient
from dropyard.files import names
from dropyard.files.service import FileService, FileView
from dropyard.files.spool import Spool
from dropyard.metrics import Metrics
from dropyard.remote.mailer import Mailer

log = logging.getLogger(__name__)

MAX_ATTACHMENTS = 100
_CHUNK = 1024 * 1024
# C0 and C1 control characters: never part of a stored name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Attachment:
    name: str
    content: bytes


@dataclass(frozen=True)
class Notice:
    """A short mail to a connection's return address. Never carries attachment content."""

    to: tuple[str, ...]
    subject: str
    body: str


@dataclass(frozen=True)
class Outcome:
    """What became of one message: the stored files, or the error to answer with."""

    files: tuple[FileView, ...] = ()
    error: DropyardError | None = None
    notice: Notice | None = None


def _shown(text: str) -> str:
    return _CONTROL.sub("?", text)[:100]


def safe_name(given: str) -> str:
    """The base name of an attachment as sent, or Invalid saying why it cannot be stored.

    Mail clients send paths (`../../x.csv`, `C:\\Users\\x.csv`): only the last segment is
    kept, without control characters.
    """
    base = _CONTROL.sub("", given).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base:
        raise Invalid(f"attachment '{_shown(given)}' has no usable file name", field="name")
    if base.startswith("."):
        raise Invalid(f"attachment name '{_shown(base)}' may not start with '.'", field="name")
    names.check_upload_name(base)
    return base


def _leaves(part: Message) -> Iterator[Message]:
    # An attached email (message/rfc822) is one leaf: its own attachments are not ours.
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _leaves(sub)
    else:
        yield part


def _is_attachment(part: Message) -> bool:
    if part.get_content_disposition() == "attachment":
        return True
    # A named part with a Content-ID is an image the HTML body shows (a signature logo).
    return part.get_filename() is not None and part["Content-ID"] is None


def _content(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        return inner[0].as_bytes()
    return b""


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def given_names(message: Message) -> list[str]:
    """The attachment names as sent, for messages to people; [] if unreadable."""
    try:
        return [_shown(p.get_filename() or "") for p in _leaves(message) if _is_attachment(p)]
    except (ValueError, LookupError, TypeError):
        return []


def attachments_of(message: Message) -> list[Attachment]:
    """Every attachment with a safe name; Invalid if there is none or one is unusable."""
    found: list[Attachment] = []
    try:
        for part in _leaves(message):
            if not _is_attachment(part):
                continue
            if len(found) >= MAX_ATTACHMENTS:
                raise Invalid(f"the message has more than {MAX_ATTACHMENTS} attachments")
            found.append(Attachment(safe_name(part.get_filename() or ""), _content(part)))
    except (ValueError, LookupError, TypeError) as exc:  # undecodable headers or parameters
        raise Invalid(f"the message could not be read as MIME: {_shown(str(exc))}") from None
    if not found:
        raise Invalid("the message has no attachment; attach the data file to send it")
    seen: set[str] = set()
    for attachment in found:
        if attachment.name in seen:
            raise Invalid(
                f"two attachments are named '{_shown(attachment.name)}'; "
                "give each file its own name"
            )
        seen.add(attachment.name)
    return found


def check_pattern(attachments: Sequence[Attachment], pattern: str) -> None:
    wrong = [a.name for a in attachments if not fnmatchcase(a.name, pattern)]
    if wrong:
        listed = ", ".join(f"'{_shown(name)}'" for name in wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        noun = "attachment" if len(wrong) == 1 else "attachments"
        verb = "does" if len(wrong) == 1 else "do"
        raise Invalid(
            f"{noun} {listed}{more} {verb} not match this drop box's file pattern '{pattern}'"
        )


def sender_allowed(allowed: Sequence[str], sender: str) -> bool:
    """An empty list lets anyone send; else the address, or its `@domain`, must be listed."""
    if not allowed:
        return True
    address = sender.strip().lower()
    domain = "@" + address.rpartition("@")[2]
    return any(entry.lower() in (address, domain) for entry in allowed)


class MailIntake:
    """Email push connections: recipient and sender checks, and storing a message's files."""

    def __init__(
        self,
        *,
        connections: ConnectionService,
        files: FileService,
        audit_log: AuditLog,
        mailer: Mailer,
        mail_domain: str,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._connections = connections
        self._files = files
        self._audit = audit_log
        self._mailer = mailer
        self._mail_domain = mail_domain.lower()

    def recipient(self, address: str, *, sender: str) -> ConnectionView:
        """The connection an address reaches, if it takes mail from this sender now."""
        connection = self._connections.by_email_address(address)
        if (
            connection is None
            or (connection.method, connection.methodology) != ("email", "push")
            or connection.status == "archived"
        ):
            raise NotFound("no such mailbox")
        if connection.status != "active":
            raise Conflict("this drop box is paused and takes no mail")
        if not sender_allowed(connection.details.get("allowed_senders") or [], sender):
            raise Forbidden(f"sender {_shown(sender)} may not send to this drop box")
        return connection

    def receive(self, *, recipient: str, sender: str, raw: bytes, client: str) -> Outcome:
        """Check a whole message, then store every attachment of it, or none."""
        try:
            connection = self.recipient(recipient, sender=sender)
        except DropyardError as exc:
            return Outcome(error=exc)
        message = parse(raw)
        given = given_names(message)
        try:
            found = attachments_of(message)
            check_pattern(found, str(connection.details.get("file_pattern") or "*"))
        except Invalid as exc:
            self._audit.write(
                actor=self._actor(connection, sender, client),
                action="email.refuse",
                target=f"connection:{connection.id}",
                account_id=connection.account_id,
                detail={"sender": sender, "files": given, "reason": exc.message},
            )
            notice = self._notice(connection, sender, message, given, exc.message)
            return Outcome(error=exc, notice=notice)
        actor = self._actor(connection, sender, client)
        try:
            stored = self._store(connection, found, actor, client)
        except DropyardError as exc:
            self._count_failed(len(found))
            log.warning("email to connection %s not stored: %s", connection.id, exc.message)
            return Outcome(error=exc)
        except Exception:
            self._count_failed(len(found))
            log.exception("email to connection %s not stored", connection.id)
            return Outcome(error=Transient("the message could not be stored; try again later"))
        if self._metrics is not None:
            for view in stored:
                self._metrics.transfer("email", "upload", "ok", view.size)
        self._audit.write(
            actor=actor,
            action="email.receive",
            target=f"connection:{connection.id}",
            account_id=connection.account_id,
            detail={
                "sender": sender,
                "files": [f.name for f in stored],
                "message_id": str(message.get("Message-ID", ""))[:200],
            },
        )
        return Outcome(files=tuple(stored))

    def send_notice(self, notice: Notice) -> None:
        """Deliver a notice; a failure is logged, never raised (the answer is already given)."""
        try:
            self._mailer.send(list(notice.to), notice.subject, notice.body)
        except Exception as exc:
            reason = exc.message if isinstance(exc, DropyardError) else type(exc).__name__
            log.warning("could not send a notice to %s: %s", ", ".join(notice.to), reason)

    # -- helpers ------------------------------------------------------------------------

    def _count_failed(self, attachments: int) -> None:
        if self._metrics is not None:
            for _ in range(attachments):
                self._metrics.transfer("email", "upload", "failed")

    @staticmethod
    def _actor(connection: ConnectionView, sender: str, client: str) -> Actor:
        return Actor(
            kind="user",
            name=f"email:{sender[:150]}",
            account_id=connection.account_id,
            role="member",
            source=client,
        )

    def _notice(
        self,
        connection: ConnectionView,
        sender: str,
        message: Message,
        given: list[str],
        reason: str,
    ) -> Notice | None:
        to = connection.details.get("return_email")
        if not to:
            return None
        if str(to).rpartition("@")[2].lower() == self._mail_domain:
            return None  # one of our own addresses: answering would loop
        if str(message.get("Auto-Submitted", "no")).strip().lower() != "no":
            return None  # never answer an autoresponder (RFC 3834)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        body = (
            f"An email to {connection.email_address} was refused, and none of its "
            "attachments was stored.\n\n"
            f"Reason:      {reason}\n"
            f"Sender:      {_shown(sender)}\n"
            f"Received:    {when}\n"
            f"Connection:  {connection.name}\n"
            f"Attachments: {', '.join(given) or '(none)'}\n\n"
            "Send the message again once the reason above is fixed.\n"
            "This message was sent automatically by Dropyard.\n"
        )
        return Notice(
            to=(str(to),),
            subject=f"Refused: email to {connection.name}",
            body=body,
        )

    def _store(
        self,
        connection: ConnectionView,
        attachments: Sequence[Attachment],
        actor: Actor,
        client: str,
    ) -> list[FileView]:
        # Write every spool first, so that a full disk refuses before anything commits.
        spools: list[Spool] = []
        try:
            for attachment in attachments:
                spool = self._files.open_spool()
                spools.append(spool)
                view = memoryview(attachment.content)
                for start in range(0, len(view), _CHUNK):
                    spool.write(view[start : start + _CHUNK])
        except BaseException:
            for spool in spools:
                spool.discard()
            raise
        return self._files.commit_many(
            [(spool, a.name) for a, spool in zip(attachments, spools, strict=True)],
            connection_id=connection.id,
            source="email",
            actor=actor,
            address=client,
        )
