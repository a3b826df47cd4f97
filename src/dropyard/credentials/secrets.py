"""Encryption of stored secrets (remote passwords, generated private keys).

`SecretBox` seals bytes with AES-256-GCM under the installation's master key. Each
ciphertext is bound to a `context` naming where it is stored (for example
``credential_secret:42``), so a value copied to another row does not open there.
`load_or_create_master_key` finds that master key: from configuration, or from a key file
that it creates on first start.

Sealed format, version 1: ``0x01 || nonce (12 bytes) || AES-GCM ciphertext and tag``,
with ``0x01 || context (UTF-8)`` as associated data.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dropyard.errors import Invalid, Terminal

__all__ = ["KEY_BYTES", "SecretBox", "SecretError", "load_or_create_master_key"]

KEY_BYTES = 32
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = bytes([VERSION])
_KEY_HINT = "base64 of 32 random bytes, e.g. the output of `openssl rand -base64 32`"


class SecretError(Terminal):
    """A sealed secret that cannot be opened. The message never contains the secret."""

    code = "secret_error"


class SecretBox:
    """Seals and opens secrets under one 32-byte master key, which it never shows."""

    __slots__ = ("_aead",)

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise Invalid(
                f"the master key has {len(master_key)} bytes; it must have {KEY_BYTES}",
                field="master_key",
            )
        self._aead = AESGCM(master_key)

    def __repr__(self) -> str:
        return "SecretBox(master_key=<hidden>)"

    def seal(self, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt `plaintext` so that it opens only with this key and this `context`."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return _HEADER + nonce + self._aead.encrypt(nonce, plaintext, _associated(context))

    def open(self, sealed: bytes, *, context: str) -> bytes:
        """Decrypt what `seal` produced with the same `context`; `SecretError` otherwise."""
        if len(sealed) < len(_HEADER) + NONCE_BYTES + TAG_BYTES:
            raise SecretError(f"the sealed secret for {context!r} is truncated")
        if sealed[:1] != _HEADER:
            raise SecretError(
                f"the sealed secret for {context!r} has unknown format version {sealed[0]}"
            )
        nonce = sealed[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + NONCE_BYTES :], _associated(context))
        except InvalidTag:
            raise SecretError(
                f"the sealed secret for {context!r} does not open: it was sealed under another "
                "master key or for another record, or it is corrupted"
            ) from None


def load_or_create_master_key(path: Path, configured: str | None) -> bytes:
    """The master key: `configured` (base64) if given, else the key file at `path`.

    A missing key file is created with fresh random bytes, readable by its owner only.
    A key file that group or others may access is refused rather than trusted.
    """
    if configured is not None:
        return _decode_key(configured, source="the configured master key (DROPYARD_MASTER_KEY)")
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    _make_private_dirs(path.parent)
    key = secrets.token_bytes(KEY_BYTES)
    if _create_exclusively(path, base64.b64encode(key) + b"\n"):
        return key
    # Another process created it first; its key is the one everybody must use.
    return _read_key_file(path)


def _associated(context: str) -> bytes:
    if not context:
        raise Invalid("a context is required to seal or open a secret", field="context")
    return _HEADER + context.encode("utf-8")


def _decode_key(text: str, *, source: str) -> bytes:
    cleaned = text.strip()
    if not cleaned:
        raise Invalid(f"{source} is empty; it must be {_KEY_HINT}", field="master_key")
    # Accept the URL-safe alphabet too: some tools print it.
    normalised = cleaned.replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(normalised, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(
            f"{source} is not valid base64; it must be {_KEY_HINT}", field="master_key"
        ) from None
    if len(key) != KEY_BYTES:
        raise Invalid(
            f"{source} decodes to {len(key)} bytes; it must be {_KEY_HINT}", field="master_key"
        )
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise Terminal(f"cannot open the master key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Terminal(f"the master key file {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise Terminal(
                f"the master key file {path} is accessible by group or others "
                f"(mode {mode:04o}); run `chmod 600 {path}` and check who may have read it"
            )
        content = handle.read(4096)
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        text = ""
    return _decode_key(text, source=f"the master key file {path}")


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories owner-only; directories that exist are left alone."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):
            new.mkdir(mode=0o700)
            new.chmod(0o700)  # mkdir's mode is narrowed by the umask; make it exact.


def _create_exclusively(path: Path, content: bytes) -> bool:
    """Write `content` to `path` unless it exists; False if another writer won.

    The content goes to a private temporary file first and is then hard-linked into
    place, so no reader ever sees a partly written key and no existing key is replaced.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask may have narrowed it further
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
