"""SMTP front-end (aiosmtpd): inbound email drop boxes on the server's asyncio loop.

aiosmtpd types stay in this module. RCPT and DATA are answered from `MailIntake`, whose
errors are mapped to SMTP replies here and nowhere else. The intake (database look-ups,
parsing, commits with fsync) runs in threads so one slow message never stalls the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import weakref
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from dropyard.errors import Conflict, DropyardError, NotFound, QuotaExceeded, Transient
from dropyard.gateway.mail_intake import MailIntake, Notice, Outcome

log = logging.getLogger(__name__)

IDENT = "Dropyard ESMTP"
# Replies are ASCII (no SMTPUTF8) and one line; user text in them is cut to this length.
_REPLY_TEXT = 400
_NOT_ASCII = re.compile(r"[^\x20-\x7e]")


def _text(message: str) -> str:
    return _NOT_ASCII.sub("?", message)[:_REPLY_TEXT]


def reply_for(exc: DropyardError) -> str:
    """The SMTP reply (code, RFC 3463 enhanced status, text) for an intake error."""
    if isinstance(exc, NotFound):
        return "550 5.1.1 no such mailbox"
    if isinstance(exc, Conflict):
        return f"550 5.2.1 {_text(exc.message)}"
    if isinstance(exc, QuotaExceeded):
        return f"552 5.3.4 {_text(exc.message)}"
    if isinstance(exc, Transient):
        return f"451 4.3.0 {_text(exc.message)}"
    return f"550 5.7.1 {_text(exc.message)}"


def _client(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return str(peer or "")


class _Handler:
    """aiosmtpd's hooks: one instance serves every connection of the listener."""

    def __init__(self, front: SmtpFrontEnd) -> None:
        self._front = front

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # No AUTH: a drop box address is the authorisation, with the sender allow-list.
        session.host_name = hostname
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_RCPT(  # noqa: N802
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if envelope.rcpt_tos:
            if address.lower() == envelope.rcpt_tos[0].lower():
                return "250 2.1.5 OK"
            # 452 makes a well-behaved server send it again, in a transaction of its own.
            return (
                f"452 4.5.3 one drop box per message: send a separate message to {_text(address)}"
            )
        sender = envelope.mail_from or ""
        try:
            await asyncio.to_thread(self._front.intake.recipient, address, sender=sender)
        except DropyardError as exc:
            log.info(
                "refused RCPT from %s (sender %s) to %s: %s",
                _client(session),
                sender,
                address,
                exc.message,
            )
            return reply_for(exc)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        client = _client(session)
        outcome = await self._front.receive(
            recipient=envelope.rcpt_tos[0],
            sender=envelope.mail_from or "",
            raw=envelope.original_content or b"",
            client=client,
        )
        if outcome.error is not None:
            log.info(
                "refused email from %s (sender %s) to %s: %s",
                client,
                envelope.mail_from,
                envelope.rcpt_tos[0],
                outcome.error.message,
            )
            return reply_for(outcome.error)
        count = len(outcome.files)
        log.info(
            "accepted email from %s (sender %s) to %s: %s",
            client,
            envelope.mail_from,
            envelope.rcpt_tos[0],
            ", ".join(f.name for f in outcome.files),
        )
        return f"250 2.0.0 accepted {count} file(s)"

    async def handle_exception(self, error: Exception) -> str:
        # Anything unforeseen (the database away...) is temporary for the sending server,
        # and its details stay in our log.
        log.error("SMTP session failed", exc_info=error)
        return "451 4.3.0 temporary failure; try again later"


class SmtpFrontEnd:
    """The SMTP listener: start, stop, and the work its connections have in flight."""

    def __init__(
        self,
        intake: MailIntake,
        *,
        hostname: str,
        data_size_limit: int,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        timeout: float = 120.0,
    ) -> None:
        self.intake = intake
        self._hostname = hostname
        self._data_size_limit = data_size_limit
        self._tls_context = tls_context
        self._require_starttls = require_starttls
        self._timeout = timeout
        self._handler = _Handler(self)
        self._server: asyncio.AbstractServer | None = None
        self._protocols: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._inflight: set[asyncio.Future[Any]] = set()

    def _protocol(self) -> SMTP:
        protocol = SMTP(
            self._handler,
            data_size_limit=self._data_size_limit,
            hostname=self._hostname,
            ident=IDENT,
            tls_context=self._tls_context,
            require_starttls=self._require_starttls,
            timeout=self._timeout,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
            loop=asyncio.get_running_loop(),
        )
        self._protocols.add(protocol)
        return protocol

    async def receive(self, *, recipient: str, sender: str, raw: bytes, client: str) -> Outcome:
        """The intake of one message, in a thread that finishes (and sends its notice)
        even when the client hangs up while waiting for the answer."""
        task = asyncio.ensure_future(
            asyncio.to_thread(
                self.intake.receive, recipient=recipient, sender=sender, raw=raw, client=client
            )
        )
        task.add_done_callback(self._after_receive)
        self._track(task)
        outcome: Outcome = await asyncio.shield(task)
        return outcome

    def _after_receive(self, task: asyncio.Future[Outcome]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        notice = task.result().notice
        if notice is not None:
            self.later(notice)

    def later(self, notice: Notice) -> None:
        """Send a notice in the background: the SMTP answer does not wait for the relay."""
        self._track(asyncio.ensure_future(asyncio.to_thread(self.intake.send_notice, notice)))

    def _track(self, future: asyncio.Future[Any]) -> None:
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)

    async def start(self, host: str, port: int) -> int:
        # aiosmtpd logs every connection and command at INFO; what matters is logged here.
        for name in ("mail.log", "mail.debug"):
            library_log = logging.getLogger(name)
            if library_log.level == logging.NOTSET:
                library_log.setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port)
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; give messages in flight `grace` seconds, then cut clients off.

        A message cut off before its DATA ended was never answered with 250: the sending
        server keeps it and tries again, and nothing of it was stored.
        """
        if self._server is None:
            return
        self._server.close()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
        for protocol in list(self._protocols):
            if protocol.transport is not None:
                protocol.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout=grace)
        self._server = None
