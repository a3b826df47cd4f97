"""Secrets every node of an installation needs alike, kept in the database.

SSH host keys and the self-signed TLS certificate are made once per installation, sealed
under the master key (`SecretBox`, context ``installation:<name>``) and read by every
node, so that a partner sees the same host key whichever node the load balancer picks.
The first node to need a secret makes it; a node that loses that race reads the winner's.

A node started with another master key cannot open them: it refuses to start
(`check_master_key`) instead of presenting keys of its own or failing obscurely later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from dropyard.cluster.models import InstallationSecret
from dropyard.cluster.sql import insert_if_missing
from dropyard.credentials.models import CredentialSecret
from dropyard.credentials.secrets import SecretBox, SecretError
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import Terminal

log = logging.getLogger(__name__)

# Made by the first node that checks its master key: something to open when no other
# installation secret exists yet (every host key may come from settings).
CANARY = "master_key_check"
_CANARY_VALUE = b"dropyard installation"


class MasterKeyMismatch(Terminal):
    """This node's master key is not the one the installation's secrets are sealed under."""

    code = "master_key_mismatch"

    def __init__(self) -> None:
        super().__init__(
            "the database holds installation secrets sealed under another master key: every "
            "node of an installation must use the same master key (the same "
            "DROPYARD_MASTER_KEY, or a copy of the first node's keys/master.key)",
            field="master_key",
        )


class InstallationSecrets:
    """Named secrets in `installation_secrets`, sealed with the installation's SecretBox."""

    def __init__(self, sessions: SessionFactory, box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box

    def get(self, name: str) -> bytes | None:
        """The secret `name`, or None when no node made it yet."""
        with self._sessions() as session:
            sealed = session.scalar(
                select(InstallationSecret.sealed).where(InstallationSecret.name == name)
            )
        return None if sealed is None else self._open(name, sealed)

    def get_or_create(self, name: str, make: Callable[[], bytes]) -> bytes:
        """The secret `name`; made with `make` and stored when missing. Race-safe: when two
        nodes make it at once, both end up with the one that was stored first."""
        found = self.get(name)
        if found is not None:
            return found
        made = make()
        sealed = self._box.seal(made, context=_context(name))
        with transaction(self._sessions) as session:
            if insert_if_missing(session, InstallationSecret, name=name, sealed=sealed):
                log.info("stored the installation's %s", name)
                return made
            winner = session.scalar(
                select(InstallationSecret.sealed).where(InstallationSecret.name == name)
            )
        if winner is None:  # deleted between our insert and our read: unheard of
            raise Terminal(f"the installation secret {name} vanished while it was stored")
        return self._open(name, winner)

    def check_master_key(self) -> None:
        """Refuse (MasterKeyMismatch) unless every installation secret opens with this
        node's master key; the first node to call it leaves a canary for the next ones.
        Before there is any (an installation upgraded from one node), one sealed remote
        credential, if there is one, must open: the first node decides nothing alone."""
        with self._sessions() as session:
            rows = session.execute(select(InstallationSecret.name, InstallationSecret.sealed)).all()
            earlier = (
                None
                if rows
                else session.execute(
                    select(CredentialSecret.credential_id, CredentialSecret.sealed_secret)
                    .where(CredentialSecret.sealed_secret.is_not(None))
                    .limit(1)
                ).first()
            )
        for name, sealed in rows:
            self._open(name, sealed)
        if earlier is not None:
            credential_id, sealed_secret = earlier
            try:
                self._box.open(sealed_secret or b"", context=f"credential:{credential_id}")
            except SecretError:
                raise MasterKeyMismatch() from None
        self.get_or_create(CANARY, lambda: _CANARY_VALUE)

    def _open(self, name: str, sealed: bytes) -> bytes:
        try:
            return self._box.open(sealed, context=_context(name))
        except SecretError:
            raise MasterKeyMismatch() from None


def _context(name: str) -> str:
    return f"installation:{name}"
