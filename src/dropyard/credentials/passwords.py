"""Generated logins and passwords of hosted password credentials, and their hashes.

Dropyard generates both halves of a hosted login and shows the password once; only an
Argon2id hash is kept. Verification never raises on a wrong password or a damaged hash,
and `dummy_verify` lets a login for an unknown user cost as much as a wrong password.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

from argon2 import PasswordHasher, profiles
from argon2.exceptions import Argon2Error, InvalidHashError

__all__ = [
    "LOGIN_PATTERN",
    "PASSWORD_ALPHABET",
    "PASSWORD_LENGTH",
    "dummy_verify",
    "generate_login",
    "generate_password",
    "hash_password",
    "needs_rehash",
    "verify_password",
]

PASSWORD_LENGTH = 32
# Letters and digits without look-alikes (0/O/o, 1/l/I): passwords get read aloud and
# retyped, and plain alphanumerics survive every FTP client, URI and config file.
PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"  # noqa: S105 - an alphabet, not a password
LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
_LOGIN_SLUG_MAX = 20
_LOGIN_SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_LOGIN_SUFFIX_LENGTH = 6
_LOGIN_FALLBACK = "user"

# Pinned rather than the library default, so an upgrade of argon2-cffi changes nothing
# silently; `needs_rehash` reports hashes made with other parameters.
_PARAMETERS = profiles.RFC_9106_LOW_MEMORY
# A hash made with `_PARAMETERS`, so verifying against it costs what a real check costs.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$gaDGdGkSxdtGhANROLJLtg"
    "$DIlfD81TWszIOlDv8v0ynIWtz5jv1i5A1MITerSIVoQ"
)


def generate_password() -> str:
    """A fresh random password of 32 unambiguous letters and digits (about 186 bits)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def generate_login(hint: str) -> str:
    """A fresh login such as ``acme-sftp-k3x9qa``: a slug of `hint` and a random suffix.

    Always matches `LOGIN_PATTERN`; uniqueness is the caller's to check.
    """
    ascii_hint = unicodedata.normalize("NFKD", hint).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_hint.lower()).strip("-")
    slug = slug[:_LOGIN_SLUG_MAX].rstrip("-") or _LOGIN_FALLBACK
    suffix = "".join(secrets.choice(_LOGIN_SUFFIX_ALPHABET) for _ in range(_LOGIN_SUFFIX_LENGTH))
    return f"{slug}-{suffix}"


def hash_password(password: str) -> str:
    """An Argon2id hash of `password`, in the PHC string format."""
    return _hasher().hash(password)


def verify_password(hash: str, password: str) -> bool:
    """True if `password` matches `hash`; False on mismatch or a malformed hash."""
    try:
        return _hasher().verify(hash, password)
    except (Argon2Error, InvalidHashError):
        return False


def needs_rehash(hash: str) -> bool:
    """True if `hash` was made with other parameters (or is malformed) and should be redone.

    Call it after a successful `verify_password`, when the plain password is at hand.
    """
    try:
        return _hasher().check_needs_rehash(hash)
    except (Argon2Error, InvalidHashError):
        return True


def dummy_verify(password: str) -> None:
    """Spend the time of one real verification, for logins whose user does not exist."""
    verify_password(_DUMMY_HASH, password)


def _hasher() -> PasswordHasher:
    return PasswordHasher.from_parameters(_PARAMETERS)
