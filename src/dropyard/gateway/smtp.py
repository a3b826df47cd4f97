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

from aiosmtpd.proxy_protocol import AF, PROTO, V2_CMD, ProxyData
from aiosmtpd.smtp import SMTP, Envelope, Session

from dropyard.errors import Conflict, DropyardError, NotFound, QuotaExceeded, Transient
from dropyard.gateway.mail_intake import MailIntake, Notice, Outcome
from dropyard.gateway.proxy_protocol import ProxyPolicy, plain_address

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


class _ProxiedSMTP(SMTP):
    """aiosmtpd's SMTP behind a load balancer. aiosmtpd reads the PROXY header (v1 or v2,
    `proxy_protocol_timeout`) and `_Handler.handle_PROXY` takes the client's address from
    it; here peers outside the trusted networks are hung up on before anything is read,
    and the client's address outlives STARTTLS (which starts a new session)."""

    def __init__(self, *args: Any, policy: ProxyPolicy, **kwargs: Any) -> None:
        super().__init__(*args, proxy_protocol_timeout=policy.timeout, **kwargs)
        self.policy = policy
        self.client_peer: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        starting = self.transport is None
        super().connection_made(transport)
        if self.client_peer is not None and self.session is not None:
            # aiosmtpd annotates `peer` as str but keeps the transport's (host, port) there.
            self.session.peer = self.client_peer  # type: ignore[assignment]
        elif starting:
            peer = transport.get_extra_info("peername")
            address = plain_address(str(peer[0])) if peer else ""
            if not self.policy.trusts(address):
                log.info("refusing SMTP connection from %s: not a trusted load balancer", address)
                transport.close()


class _Handler:
    """aiosmtpd's hooks: one instance serves every connection of the listener."""

    def __init__(self, front: SmtpFrontEnd) -> None:
        self._front = front

    async def handle_PROXY(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, proxy_data: ProxyData
    ) -> bool:
        """A well-formed PROXY header arrived (aiosmtpd closes on a garbled or late one)."""
        if not isinstance(server, _ProxiedSMTP):
            return False
        if proxy_data.command == V2_CMD.LOCAL or proxy_data.family == AF.UNSPEC:
            return True  # the balancer speaking for itself (a health check)
        if proxy_data.protocol != PROTO.STREAM or proxy_data.family not in (AF.INET, AF.INET6):
            log.warning(
                "closing SMTP connection from %s: PROXY header not for TCP", _client(session)
            )
            return False
        client = (plain_address(str(proxy_data.src_addr)), int(proxy_data.src_port or 0))
        server.client_peer = client
        session.peer = client  # type: ignore[assignment]
        return True

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
        proxy: ProxyPolicy | None = None,
    ) -> None:
        self.intake = intake
        self._proxy = proxy
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
        extra: dict[str, Any] = {}
        if self._proxy is not None:
            extra["policy"] = self._proxy
        protocol = (_ProxiedSMTP if self._proxy is not None else SMTP)(
            self._handler,
            data_size_limit=self._data_size_limit,
            hostname=self._hostname,
            ident=IDENT,
            tls_context=self._tls_context,
            require_starttls=self._require_starttls,
            timeout=self._timeout,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
            loop=asyncio.get_running_loop(),
            **extra,
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
