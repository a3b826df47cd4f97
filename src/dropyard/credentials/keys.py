"""Public keys of hosted public-key credentials, and key pairs for remote logins.

`parse_public_key` turns what a user pastes (OpenSSH one-line, RFC 4716 or PKCS#8 PEM)
into one normalised OpenSSH line and its fingerprint, or refuses it with an `Invalid`
whose message says what is wrong. Messages never repeat the pasted text: people paste
private keys by mistake, and error messages end up in logs.

asyncssh reads the RFC 4716 and PEM formats; cryptography validates the key itself. Only
the checks those libraries do not make (one key, no options, no private key, which
algorithms and sizes we accept) are written here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

import asyncssh
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_public_key,
)

from dropyard.errors import Invalid

__all__ = [
    "GeneratedKeyPair",
    "ParsedKey",
    "fingerprint_of",
    "generate_key_pair",
    "parse_public_key",
]

FIELD = "public_key"

MIN_RSA_BITS = 2048
# OpenSSH refuses larger RSA keys too; a huge modulus only costs us CPU at each login.
MAX_RSA_BITS = 16384
# A 16384-bit RSA key in RFC 4716 form is under 3 KB; anything far longer is not a key.
MAX_INPUT_CHARS = 20_000

_CURVES: dict[str, str] = {
    "ecdsa-sha2-nistp256": "secp256r1",
    "ecdsa-sha2-nistp384": "secp384r1",
    "ecdsa-sha2-nistp521": "secp521r1",
}
ACCEPTED_ALGORITHMS: frozenset[str] = frozenset({"ssh-ed25519", "ssh-rsa", *_CURVES})

_ACCEPTED_HINT = "use Ed25519, ECDSA or RSA of at least 2048 bits"
MSG_EMPTY = "no public key was given; paste an OpenSSH, RFC 4716 or PKCS#8 PEM public key"
MSG_TOO_LONG = "the pasted text is far too long to be a public key"
MSG_NOT_A_KEY = "this is not a public key in OpenSSH, RFC 4716 or PKCS#8 PEM format"
MSG_DAMAGED = "the key data is damaged or incomplete; paste the whole key again"
MSG_PRIVATE = "this is a private key; paste the public key (the .pub file) instead"
MSG_DSA = f"DSA keys are not accepted; {_ACCEPTED_HINT}"
MSG_OPTIONS = "key options such as command= are not accepted; paste the key alone"
MSG_MANY = "more than one key was pasted; paste a single public key"
MSG_EXTRA = "the pasted text has other lines besides the key; paste the key alone"
MSG_CERTIFICATE = "SSH certificates are not accepted; paste the plain public key"

# Any key type name OpenSSH knows is shaped like one of these; used only to recognise
# where a key starts in a line, so that options and second keys can be named.
_ALGORITHM_LIKE = re.compile(
    r"(?:ssh-[a-z0-9]+|ecdsa-sha2-[a-z0-9]+|sk-[a-z0-9-]+@openssh\.com"
    r"|[a-z0-9-]+-cert-v01@openssh\.com)"
)
# Every SSH key blob starts with a uint32 length below 2**24, so its base64 starts "AAAA".
_BLOB_LIKE = re.compile(r"AAAA[A-Za-z0-9+/]+={0,2}")
# Safe to show back: a real key type name, never arbitrary pasted text.
_SHOWABLE_ALGORITHM = re.compile(r"[A-Za-z0-9@._-]{1,64}")
_PRIVATE_MARKERS = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|---- BEGIN SSH2 [A-Z ]*PRIVATE KEY ----"
    r"|PuTTY-User-Key-File-"
)
# A PEM block (five dashes) or an RFC 4716 block (four dashes and a space).
_BLOCK = re.compile(
    r"^(?P<dashes>-{4,5}) ?BEGIN (?P<label>[A-Z0-9 ]+?) ?-{4,5}[ \t]*$"
    r".*?"
    r"^-{4,5} ?END (?P=label) ?-{4,5}[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_BEGIN_LINE = re.compile(r"^-{4,5} ?BEGIN ", re.MULTILINE)
_PEM_PUBLIC_LABELS = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY"})
_RFC4716_LABEL = "SSH2 PUBLIC KEY"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ParsedKey:
    """An accepted public key: what to store, show and compare at login."""

    algorithm: str
    bits: int
    openssh: str
    fingerprint: str
    comment: str


@dataclass(frozen=True)
class GeneratedKeyPair:
    """A fresh Ed25519 pair for logging in to a partner's server.

    `private_openssh` is unencrypted; the caller seals it before it is stored.
    """

    private_openssh: str
    public_openssh: str
    fingerprint: str

    def __repr__(self) -> str:
        return f"GeneratedKeyPair(public_openssh={self.public_openssh!r}, private_openssh=<hidden>)"


def parse_public_key(text: str) -> ParsedKey:
    """Parse one pasted public key, or raise `Invalid(field="public_key")` saying why not."""
    if len(text) > MAX_INPUT_CHARS:
        raise Invalid(MSG_TOO_LONG, field=FIELD)
    # Pasting indents and re-wraps text; no format we read gives meaning to line indent.
    text = "\n".join(line.strip() for line in text.splitlines()).strip()
    if not text:
        raise Invalid(MSG_EMPTY, field=FIELD)
    if _PRIVATE_MARKERS.search(text):
        raise Invalid(MSG_PRIVATE, field=FIELD)

    blocks = list(_BLOCK.finditer(text))
    if len(_BEGIN_LINE.findall(text)) != len(blocks):
        # A BEGIN without its END: cut short, or two formats tangled together.
        raise Invalid(MSG_DAMAGED if len(blocks) <= 1 else MSG_MANY, field=FIELD)
    outside = _BLOCK.sub("\n", text)
    lines = [line for line in outside.split("\n") if line and not line.startswith("#")]
    keyish = len(blocks) + sum(1 for line in lines if _key_start(line.split()) is not None)
    if len(blocks) + len(lines) != 1:
        if keyish > 1:
            raise Invalid(MSG_MANY, field=FIELD)
        if keyish == 1:
            raise Invalid(MSG_EXTRA, field=FIELD)
        raise Invalid(MSG_NOT_A_KEY, field=FIELD)

    if blocks:
        return _parse_block(blocks[0])
    return _parse_line(lines[0])


def fingerprint_of(openssh_public_line: str) -> str:
    """The OpenSSH SHA-256 fingerprint ("SHA256:…") of an `algo base64 [comment]` line."""
    fields = openssh_public_line.split()
    if len(fields) < 2:
        raise Invalid(MSG_NOT_A_KEY, field=FIELD)
    return _fingerprint(_decode_blob(fields[1]))


def generate_key_pair(comment: str) -> GeneratedKeyPair:
    """Generate an Ed25519 key pair; `comment` ends both halves (whitespace is tidied)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=_clean_comment(comment) or None)
    public_line = key.export_public_key("openssh").decode("ascii").strip()
    return GeneratedKeyPair(
        private_openssh=key.export_private_key("openssh").decode("ascii"),
        public_openssh=public_line,
        fingerprint=fingerprint_of(public_line),
    )


def _parse_block(block: re.Match[str]) -> ParsedKey:
    label = block["label"].strip()
    is_pem = len(block["dashes"]) == 5
    if is_pem and "CERTIFICATE" in label:
        raise Invalid("X.509 certificates are not accepted; paste an SSH public key", field=FIELD)
    if (is_pem and label not in _PEM_PUBLIC_LABELS) or (not is_pem and label != _RFC4716_LABEL):
        raise Invalid(MSG_NOT_A_KEY, field=FIELD)
    try:
        key = asyncssh.import_public_key(block.group(0))
    except (asyncssh.KeyImportError, ValueError, UnicodeError):
        raise Invalid(MSG_DAMAGED, field=FIELD) from None
    fields = key.export_public_key("openssh").decode("ascii").split()
    return _accept(fields[0], fields[1], key.get_comment() or "")


def _parse_line(line: str) -> ParsedKey:
    fields = line.split()
    start = _key_start(fields)
    if start is None:
        if len(fields) == 1 and _ALGORITHM_LIKE.fullmatch(fields[0]):
            raise Invalid(MSG_DAMAGED, field=FIELD)
        raise Invalid(MSG_NOT_A_KEY, field=FIELD)
    if start > 0:
        raise Invalid(MSG_OPTIONS, field=FIELD)
    if _key_start(fields[2:]) is not None:
        raise Invalid(MSG_MANY, field=FIELD)
    return _accept(fields[0], fields[1], " ".join(fields[2:]))


def _key_start(fields: list[str]) -> int | None:
    """Index of the key type in `fields` (a type name followed by a blob), if any."""
    for index in range(len(fields) - 1):
        if _ALGORITHM_LIKE.fullmatch(fields[index]) and _BLOB_LIKE.fullmatch(fields[index + 1]):
            return index
    return None


def _accept(algorithm: str, data: str, comment: str) -> ParsedKey:
    """Check one `algorithm data comment` triple against what Dropyard accepts."""
    if algorithm.endswith("-cert-v01@openssh.com"):
        raise Invalid(MSG_CERTIFICATE, field=FIELD)
    blob = _decode_blob(data)
    if _blob_algorithm(blob) != algorithm:
        raise Invalid(MSG_DAMAGED, field=FIELD)
    if algorithm == "ssh-dss":
        raise Invalid(MSG_DSA, field=FIELD)
    if algorithm not in ACCEPTED_ALGORITHMS:
        shown = algorithm if _SHOWABLE_ALGORITHM.fullmatch(algorithm) else "these"
        raise Invalid(f"{shown} keys are not accepted; {_ACCEPTED_HINT}", field=FIELD)

    canonical = base64.b64encode(blob).decode("ascii")
    try:
        key = load_ssh_public_key(f"{algorithm} {canonical}".encode("ascii"))
    except (ValueError, UnsupportedAlgorithm):
        raise Invalid(MSG_DAMAGED, field=FIELD) from None
    # Trailing bytes or odd number encodings would give the same key another fingerprint.
    reencoded = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1]
    if reencoded != canonical.encode("ascii"):
        raise Invalid(MSG_DAMAGED, field=FIELD)

    bits = _bits(algorithm, key)
    comment = _clean_comment(comment)
    openssh = f"{algorithm} {canonical} {comment}" if comment else f"{algorithm} {canonical}"
    return ParsedKey(
        algorithm=algorithm,
        bits=bits,
        openssh=openssh,
        fingerprint=_fingerprint(blob),
        comment=comment,
    )


def _bits(algorithm: str, key: object) -> int:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise Invalid(
                f"this RSA key has {key.key_size} bits; RSA keys need at least "
                f"{MIN_RSA_BITS} bits (or use Ed25519)",
                field=FIELD,
            )
        if key.key_size > MAX_RSA_BITS:
            raise Invalid(
                f"this RSA key has {key.key_size} bits; at most {MAX_RSA_BITS} are accepted",
                field=FIELD,
            )
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _CURVES.get(algorithm):
        return key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey) and algorithm == "ssh-ed25519":
        return 256
    raise Invalid(MSG_DAMAGED, field=FIELD)


def _decode_blob(data: str) -> bytes:
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(MSG_DAMAGED, field=FIELD) from None
    if not blob:
        raise Invalid(MSG_DAMAGED, field=FIELD)
    return blob


def _blob_algorithm(blob: bytes) -> str | None:
    """The key type name an SSH wire-format key blob starts with."""
    if len(blob) < 4:
        return None
    (length,) = struct.unpack(">I", blob[:4])
    name = blob[4 : 4 + length]
    if len(name) != length:
        return None
    try:
        return name.decode("ascii")
    except UnicodeDecodeError:
        return None


def _fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def _clean_comment(comment: str) -> str:
    """One line of printable text: the comment is stored and shown next to the key."""
    return " ".join(_CONTROL.sub(" ", comment).split())
