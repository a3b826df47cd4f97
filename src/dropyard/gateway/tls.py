"""The TLS certificate the FTPS and SMTP listeners present.

The operator's own (`tls_cert_file`, `tls_key_file`) when configured. Otherwise one
self-signed certificate per installation, made by the first node and kept in the database
(`cluster/secrets.py`), so every node presents the same one; each node writes its copy to
its data dir (`keys/tls.crt`, `keys/tls.key`, mode 0600) because the TLS libraries load
files. An installation upgraded from a single node keeps the certificate that node had.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import secrets
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dropyard.cluster.secrets import InstallationSecrets
from dropyard.errors import Invalid
from dropyard.settings import Settings

log = logging.getLogger(__name__)

# Its installation secret: the key's PEM followed by the certificate's PEM.
TLS_ENTRY = "tls_certificate"
_KEY_END = re.compile(rb"-----END [A-Z ]*PRIVATE KEY-----")


def certificate_for(settings: Settings, *, shared: InstallationSecrets) -> tuple[Path, Path]:
    """The certificate and key files to present: the operator's, else the installation's."""
    if settings.tls_cert_file is not None:
        cert = settings.tls_cert_file
        key = settings.tls_key_file or settings.tls_cert_file
        try:
            server_context(cert, key)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or "unusable"
            raise Invalid(
                f"the TLS certificate {cert} and key {key} cannot be loaded: {reason}",
                field="tls_cert_file",
            ) from None
        return cert, key
    return ensure_certificate(settings.keys_dir, hostname=settings.public_host, shared=shared)


def ensure_certificate(
    keys_dir: Path, *, hostname: str, shared: InstallationSecrets | None = None
) -> tuple[Path, Path]:
    """Paths of the certificate and key in `keys_dir`.

    With `shared`: the installation's pair, written over whatever the files hold (made
    from the files already there when the installation has none yet). Without: the files
    as they are, generated self-signed when missing.
    """
    keys_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = keys_dir / "tls.crt", keys_dir / "tls.key"
    if shared is None:
        if not (cert_path.exists() and key_path.exists()):
            key_pem, cert_pem = _self_signed(hostname)
            _write(key_path, key_pem)
            _write(cert_path, cert_pem)
        return cert_path, key_path

    def make() -> bytes:
        existing = _read_pair(cert_path, key_path)
        if existing is not None:
            log.info("the installation takes this node's TLS certificate %s", cert_path)
            return existing[0] + existing[1]
        return b"".join(_self_signed(hostname))

    key_pem, cert_pem = _split(shared.get_or_create(TLS_ENTRY, make))
    for path, content in ((key_path, key_pem), (cert_path, cert_pem)):
        if _differs(path, content):
            if path.exists():
                log.warning("replacing %s with the installation's shared copy", path)
            _write(path, content)
    return cert_path, key_path


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    """A new EC P-256 key and a self-signed certificate for `hostname`, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        alt = x509.DNSName(hostname)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _read_pair(cert_path: Path, key_path: Path) -> tuple[bytes, bytes] | None:
    """The (key, certificate) PEM of a node's earlier files, if both are there and sound."""
    try:
        key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except (OSError, ValueError, TypeError):
        return None
    if cert.public_key() != key.public_key():
        return None
    return key_pem if key_pem.endswith(b"\n") else key_pem + b"\n", cert_pem


def _split(bundle: bytes) -> tuple[bytes, bytes]:
    """(key, certificate chain) of a bundle: the private key block comes first."""
    end = _KEY_END.search(bundle)
    if end is None:
        raise Invalid("the installation's TLS certificate is damaged (no private key)")
    return bundle[: end.end()] + b"\n", bundle[end.end() :].lstrip()


def _differs(path: Path, content: bytes) -> bool:
    try:
        return path.read_bytes() != content
    except FileNotFoundError:
        return True


def _write(path: Path, content: bytes) -> None:
    """Replace `path` atomically; owner-only, as it may hold a private key."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context that speaks TLS 1.2 or newer only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def fingerprint(cert: Path) -> str:
    """SHA-256 of the certificate, as colon-separated upper-case hex."""
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    return loaded.fingerprint(hashes.SHA256()).hex(":").upper()
