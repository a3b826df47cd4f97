"""What every protocol client shares: how a server is named in messages, what of its
answers is safe to show, how a cut-off is worded, certificate pins, and the socket
failures every protocol meets alike."""

from __future__ import annotations

import hashlib
import ssl

from dropyard.errors import DropyardError
from dropyard.remote.base import Endpoint, Limits, NotTrusted, RemoteError, Stage

# -- TLS pinning (FTPS and IMAPS) ---------------------------------------------------------


def certificate_fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as `openssl x509 -fingerprint -sha256` prints it."""
    return hashlib.sha256(der).digest().hex(":").upper()


def normalise_pin(pin: str) -> str:
    """A pinned fingerprint in the one form `certificate_fingerprint` gives (the connection
    details accept it with or without colons, in either case)."""
    digits = "".join(pin.split()).replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def pinning_context() -> ssl.SSLContext:
    """A client context that checks no CA and no name: trust is the pinned fingerprint."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def check_pin(endpoint: Endpoint, der: bytes | None) -> str:
    """The presented fingerprint; NotTrusted when a pin is set and differs."""
    if not der:
        raise RemoteError(f"{where(endpoint)} presented no certificate", stage="trust")
    presented = certificate_fingerprint(der)
    if endpoint.pin is not None and normalise_pin(endpoint.pin) != presented:
        raise NotTrusted(
            f"{where(endpoint)} presented a certificate other than the pinned one "
            f"(presented {presented}); if the partner changed it, pin the new fingerprint",
            presented=presented,
        )
    return presented


def where(endpoint: Endpoint) -> str:
    if endpoint.address == endpoint.host:
        return f"{endpoint.host}:{endpoint.port}"
    return f"{endpoint.host}:{endpoint.port} ({endpoint.address})"


def server_text(text: object, limit: int = 200) -> str:
    """A server's answer as safe to show: printable characters only, cut to `limit`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    shown = "".join(c if c.isprintable() else " " for c in str(text)).strip()
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def timed_out(limits: Limits, idle: float) -> str:
    if limits.remaining() <= 0:
        return "the session ran past its time limit and was cut"
    return f"the server sent nothing for {idle:g} seconds"


def socket_failure(
    exc: BaseException, where: str, limits: Limits, stage: Stage
) -> DropyardError | None:
    """The error a user reads for a timeout or a socket failure; None for anything else
    (the protocol's own errors, which its client words)."""
    if isinstance(exc, TimeoutError):
        if stage == "reach":
            return RemoteError(
                f"could not reach {where}: no answer within {limits.connect_timeout:g} seconds",
                stage=stage,
            )
        return RemoteError(f"{where}: {timed_out(limits, limits.idle_timeout)}", stage=stage)
    if isinstance(exc, ConnectionRefusedError):
        return RemoteError(f"could not reach {where}: connection refused", stage=stage)
    if isinstance(exc, OSError):
        reason = server_text(exc.strerror or exc)
        if stage == "reach":
            return RemoteError(f"could not reach {where}: {reason}", stage=stage)
        return RemoteError(f"{where}: the connection failed ({reason})", stage=stage)
    return None
