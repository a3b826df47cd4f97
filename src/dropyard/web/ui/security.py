"""The web console's session, CSRF tokens, one-time notices and security headers.

Everything the console hands a browser to keep (the session cookie, the wizard's state in
its hidden field, a one-time notice) is sealed with AES-256-GCM under a key derived with
HKDF from the installation's master key: encrypted and authenticated at once, so it can be
neither read nor changed. Each sealed value is bound to a purpose (associated data): a
wizard state does not open as a session, and a state made for one session does not open
in another. Nothing is kept on the server, so any node behind a load balancer that shares
the master key serves any request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "dropyard_session"
FLASH_COOKIE = "dropyard_flash"
CSRF_FIELD = "csrf_token"
# A signed-in session lasts this long whatever the activity; then the user signs in again.
SESSION_SECONDS = 12 * 3600
# An anonymous session only carries the sign-in form's CSRF token.
ANONYMOUS_SECONDS = 2 * 3600
# A one-time notice (and a secret shown once) waits this long for the page that shows it.
FLASH_SECONDS = 120
_VERSION = b"\x01"
_NONCE_BYTES = 12
_INFO = b"dropyard web console v1"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


class Sealer:
    """Seals JSON documents for a purpose; `open` gives back the document or None."""

    __slots__ = ("_aead",)

    def __init__(self, master_key: bytes) -> None:
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_INFO).derive(master_key)
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "Sealer(key=<hidden>)"

    def seal(self, document: Mapping[str, Any], *, purpose: str) -> str:
        plain = zlib.compress(json.dumps(document, separators=(",", ":")).encode())
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = _VERSION + nonce + self._aead.encrypt(nonce, plain, purpose.encode())
        return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def open(self, token: str | None, *, purpose: str) -> dict[str, Any] | None:
        """The sealed document, or None for anything not sealed here for this purpose."""
        if not token or len(token) > 64_000:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) < 1 + _NONCE_BYTES + 16 or raw[:1] != _VERSION:
            return None
        nonce, body = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, body, purpose.encode())
            document = json.loads(zlib.decompress(plain, bufsize=64_000))
        except (InvalidTag, zlib.error, ValueError):
            return None
        return document if isinstance(document, dict) else None


@dataclass(frozen=True)
class Session:
    """One browser's session: anonymous (`email` None) until its user signs in."""

    sid: str
    csrf: str
    email: str | None
    expires: int

    @classmethod
    def new(cls, email: str | None = None, *, now: float | None = None) -> Session:
        lifetime = SESSION_SECONDS if email else ANONYMOUS_SECONDS
        return cls(
            sid=secrets.token_urlsafe(16),
            csrf=secrets.token_urlsafe(32),
            email=email,
            expires=int((time.time() if now is None else now) + lifetime),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"sid": self.sid, "csrf": self.csrf, "email": self.email, "exp": self.expires}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, now: float | None = None) -> Session | None:
        sid, csrf, email, expires = (data.get(k) for k in ("sid", "csrf", "email", "exp"))
        if not (isinstance(sid, str) and isinstance(csrf, str) and isinstance(expires, int)):
            return None
        if email is not None and not isinstance(email, str):
            return None
        if expires <= (time.time() if now is None else now):
            return None
        return cls(sid=sid, csrf=csrf, email=email, expires=expires)

    def csrf_matches(self, given: object) -> bool:
        return isinstance(given, str) and hmac.compare_digest(self.csrf, given)


class Cookies:
    """Reads and writes the console's cookies: HttpOnly, SameSite=Lax, Secure over https."""

    def __init__(self, sealer: Sealer, *, https: bool) -> None:
        self._sealer = sealer
        self._https = https

    def secure(self, request: Request) -> bool:
        return self._https or request.scope.get("scheme") == "https"

    def session(self, request: Request) -> Session | None:
        data = self._sealer.open(request.cookies.get(SESSION_COOKIE), purpose="session")
        return None if data is None else Session.from_dict(data)

    def set_session(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self._sealer.seal(session.to_dict(), purpose="session"),
            max_age=max(session.expires - int(time.time()), 0),
            path="/",
            secure=self.secure(request),
            httponly=True,
            samesite="lax",
        )

    def flash(self, request: Request, session: Session | None) -> dict[str, Any] | None:
        """The one-time notice left for this session, if any (not yet removed)."""
        if session is None:
            return None
        data = self._sealer.open(request.cookies.get(FLASH_COOKIE), purpose="flash")
        if data is None or data.get("sid") != session.sid:
            return None
        if not isinstance(data.get("at"), int) or data["at"] + FLASH_SECONDS < time.time():
            return None
        return data

    def set_flash(
        self, request: Request, response: Response, session: Session, data: Mapping[str, Any]
    ) -> None:
        document = {**data, "sid": session.sid, "at": int(time.time())}
        response.set_cookie(
            FLASH_COOKIE,
            self._sealer.seal(document, purpose="flash"),
            max_age=FLASH_SECONDS,
            path="/",
            secure=self.secure(request),
            httponly=True,
            samesite="strict",
        )

    def clear_flash(self, request: Request, response: Response) -> None:
        response.delete_cookie(
            FLASH_COOKIE, path="/", secure=self.secure(request), httponly=True, samesite="strict"
        )


def add_security_headers(response: Response, *, cache: bool = False) -> None:
    """The headers every console answer carries; pages are never cached (they may show a
    secret once, and must not reappear from the cache after sign-out)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not cache:
        response.headers["Cache-Control"] = "no-store"
