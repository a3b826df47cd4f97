"""Signed, expiring download links for outbound files delivered by email.

A file too big to attach is mailed as a link `/d/<token>`. The token carries the file id
and an expiry and is signed with HMAC-SHA256 under a key derived (HKDF) from the master
key with its own purpose string, so it is checked without a database row of its own and
every node of an installation accepts the links of the others. The web route only
streams: what a token may open is decided here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import mimetypes
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dropyard.accounts import audit
from dropyard.accounts.actors import Actor
from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import NotFound, Terminal
from dropyard.files.models import File
from dropyard.files.service import FileService
from dropyard.settings import Settings

LINK_PURPOSE = b"dropyard download links v1"
LINK_LIFETIME = timedelta(days=7)
_VERSION = 1
_PAYLOAD = struct.Struct(">BQQ")  # version, file id, expiry (seconds since the epoch)
_MAC_BYTES = 32


class LinkInvalid(NotFound):
    """Not a link Dropyard made (mistyped, cut, or tampered with). Says nothing more."""


class LinkExpired(Terminal):
    """A genuine link past its expiry."""

    code = "gone"


def derive_link_key(master_key: bytes) -> bytes:
    """The links' signing key: the master key never signs anything itself."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LINK_PURPOSE).derive(
        master_key
    )


def link_base(settings: Settings) -> str:
    """Where the web server is reached from outside, without a trailing slash."""
    configured = getattr(settings, "public_url", None)
    if isinstance(configured, str) and configured:
        return configured.rstrip("/")
    scheme = "https" if settings.web_https else "http"
    return f"{scheme}://{settings.public_host}:{settings.web_port}"


def media_type(name: str) -> str:
    """The MIME type a file is sent with, from its name."""
    lowered = name.lower()
    if lowered.endswith(".gz"):
        return "application/gzip"
    if lowered.endswith((".csv", ".pipe")):
        return "text/csv"
    if lowered.endswith(".tsv"):
        return "text/tab-separated-values"
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Makes and checks tokens; never raises anything but LinkInvalid / LinkExpired."""

    def __init__(self, key: bytes, *, clock: Callable[[], datetime] = utcnow) -> None:
        if len(key) < 32:
            raise ValueError("a link key needs at least 32 bytes")
        self._key = key
        self._clock = clock

    def sign(self, file_id: int, expires_at: datetime) -> str:
        payload = _PAYLOAD.pack(_VERSION, file_id, int(expires_at.timestamp()))
        return _b64(payload + self._mac(payload))

    def verify(self, token: str) -> int:
        """The file id a genuine, unexpired token names."""
        try:
            raw = _unb64(token) if token.isascii() else b""
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != _PAYLOAD.size + _MAC_BYTES:
            raise LinkInvalid("this download link is not valid")
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise LinkInvalid("this download link is not valid")
        version, file_id, expires = _PAYLOAD.unpack(payload)
        if version != _VERSION:
            raise LinkInvalid("this download link is not valid")
        if self._clock() >= datetime.fromtimestamp(expires, tz=UTC):
            raise LinkExpired("this download link has expired; ask the sender for the file")
        return int(file_id)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


@dataclass(frozen=True)
class Download:
    """What a valid link opens: the caller closes `stream`."""

    file_id: int
    name: str
    size: int
    media_type: str
    stream: BinaryIO


class DownloadLinks:
    """Links to outbound files delivered by email, and opening them again."""

    def __init__(
        self,
        sessions: SessionFactory,
        files: FileService,
        signer: LinkSigner,
        *,
        base_url: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._files = files
        self._signer = signer
        self._base = base_url.rstrip("/")
        self._clock = clock

    def url_for(self, file_id: int, *, lifetime: timedelta = LINK_LIFETIME) -> tuple[str, datetime]:
        """A link to the file and when it stops working."""
        expires = self._clock() + lifetime
        return f"{self._base}/d/{self._signer.sign(file_id, expires)}", expires

    def open(self, token: str, *, address: str = "") -> Download:
        """The file a token names, if it is an outbound file delivered by email. Each
        download is in the audit log, with the address it came from."""
        file_id = self._signer.verify(token)
        with transaction(self._sessions) as session:
            row = session.get(File, file_id)
            connection = session.get(Connection, row.connection_id) if row else None
            if (
                row is None
                or connection is None
                or row.direction != "outbound"
                or connection.method != "email"
                or connection.methodology != "deliver"
                or row.state != "delivered"
            ):
                raise LinkInvalid("this download link is not valid")
            name, size = row.name, row.size
            audit.record(
                session,
                actor=Actor(kind="system", name="download-link", source=f"web {address}"),
                action="file.download",
                target=f"file:{file_id}",
                account_id=row.account_id,
                detail={"name": name, "address": address},
            )
        return Download(file_id, name, size, media_type(name), self._files.open_stored(file_id))
