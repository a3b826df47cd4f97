"""Logins to the hosted endpoints: check a credential, score failures, open a session.

Every protocol adapter logs in through here, so bans, audit and the "unknown user looks
like a wrong password" rule hold the same for SFTP, FTP and the web.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from dropyard.accounts.actors import Actor
from dropyard.accounts.audit import AuditLog
from dropyard.connections.service import ConnectionService
from dropyard.credentials.service import CredentialService, HostedLogin
from dropyard.errors import Transient
from dropyard.files.service import FileService
from dropyard.gateway.defender import Defender
from dropyard.gateway.session import GatewaySession, Protocol
from dropyard.metrics import Metrics

log = logging.getLogger(__name__)

UNAVAILABLE = "Dropyard is temporarily unavailable; try again in a moment"


class Gateway:
    def __init__(
        self,
        *,
        credentials: CredentialService,
        connections: ConnectionService,
        files: FileService,
        defender: Defender,
        audit: AuditLog,
        metrics: Metrics | None = None,
    ) -> None:
        self.credentials = credentials
        self.metrics = metrics or Metrics()
        self.connections = connections
        self.files = files
        self.defender = defender
        self.audit = audit
        # Outbound bookkeeping, set by the composition root: a partner took (read to the
        # end) or removed a file of a hosted outbound folder.
        self.on_download: Callable[[int, str], object] | None = None
        self.on_delete: Callable[[int, str], object] | None = None

    def login_password(
        self, login: str, password: str, *, protocol: Protocol, address: str, secure: bool = True
    ) -> GatewaySession | None:
        """The session of a good login, None for a bad one; Transient (safe to show) when
        the database cannot answer, so the edge says "try again" instead of "wrong"."""
        try:
            if self.defender.is_banned(address):
                self.metrics.login(protocol, "banned")
                return None
            found = self.credentials.check_password(login=login, password=password)
            return self._finish(found, login, protocol, address, secure, method="password")
        except (SQLAlchemyError, Transient) as exc:
            raise self._unavailable(exc, protocol, address) from None

    def find_key(
        self, login: str, openssh_key: str, *, protocol: Protocol = "sftp", address: str = ""
    ) -> HostedLogin | None:
        """The SSH public-key query (before any signature): is this key worth a signature?"""
        try:
            return self.credentials.check_public_key(login=login, openssh_key=openssh_key)
        except SQLAlchemyError as exc:
            raise self._unavailable(exc, protocol, address) from None

    def _unavailable(self, exc: Exception, protocol: Protocol, address: str) -> Transient:
        detail = exc.message if isinstance(exc, Transient) else type(exc).__name__
        log.warning(
            "a %s login from %s could not be checked: the database is unavailable (%s)",
            protocol,
            address,
            detail,
        )
        self.metrics.login(protocol, "unavailable")
        return Transient(UNAVAILABLE)

    def key_session(self, found: HostedLogin, *, address: str) -> GatewaySession:
        """After the signature checked out: the session, without touching the database."""
        return self.session(found, protocol="sftp", address=address)

    def record_login(
        self, found: HostedLogin, *, protocol: Protocol, address: str, method: str
    ) -> None:
        self.defender.success(address)
        self.metrics.login(protocol, "success")
        actor = Actor(
            kind="user",
            name=f"{protocol}:{found.login}",
            source=address,
            account_id=found.account_id,
        )
        self.audit.write(
            actor=actor,
            action="login.success",
            target=f"credential:{found.credential_id}",
            detail={"protocol": protocol, "method": method, "address": address},
        )

    def _finish(
        self,
        found: HostedLogin | None,
        login: str,
        protocol: Protocol,
        address: str,
        secure: bool,
        *,
        method: str,
    ) -> GatewaySession | None:
        actor = Actor(
            kind="user",
            name=f"{protocol}:{login[:64]}",
            source=address,
            account_id=found.account_id if found else None,
        )
        if found is None:
            self.metrics.login(protocol, "failure")
            banned = self.defender.failure(address)
            self.audit.write(
                actor=actor,
                action="login.failure",
                detail={
                    "protocol": protocol,
                    "method": method,
                    "banned": banned,
                    "address": address,
                },
            )
            if banned:
                log.warning("address %s banned after repeated failed logins", address)
            return None
        session = self.session(found, protocol=protocol, address=address, secure=secure)
        if not secure and not session.folders():
            # Right password, but plain FTP reaches none of this login's folders.
            self.metrics.login(protocol, "refused")
            self.audit.write(
                actor=actor,
                action="login.refused",
                target=f"credential:{found.credential_id}",
                detail={"protocol": protocol, "reason": "TLS required", "address": address},
            )
            return session
        self.record_login(found, protocol=protocol, address=address, method=method)
        return session

    def session(
        self, found: HostedLogin, *, protocol: Protocol, address: str, secure: bool = True
    ) -> GatewaySession:
        return GatewaySession(
            login=found,
            protocol=protocol,
            address=address,
            connections=self.connections,
            files=self.files,
            on_download=self.on_download,
            on_delete=self.on_delete,
            audit=self.audit,
            secure=secure,
            metrics=self.metrics,
        )
