"""Public key parsing and key pair generation, checked against OpenSSH's own ssh-keygen."""

from __future__ import annotations

import base64
import os
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_public_key,
)

from dropyard.credentials.keys import (
    MSG_CERTIFICATE,
    MSG_DAMAGED,
    MSG_DSA,
    MSG_EMPTY,
    MSG_EXTRA,
    MSG_MANY,
    MSG_NOT_A_KEY,
    MSG_OPTIONS,
    MSG_PRIVATE,
    fingerprint_of,
    generate_key_pair,
    parse_public_key,
)
from dropyard.errors import Invalid

SSH_KEYGEN = "/usr/bin/ssh-keygen"
COMMENT = "alice@example.com laptop"


@dataclass(frozen=True)
class Pair:
    private: Path
    public: Path

    @property
    def line(self) -> str:
        return self.public.read_text()

    @property
    def fingerprint(self) -> str:
        return ssh_keygen_fingerprint(self.public)


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def ssh_keygen_fingerprint(public: Path) -> str:
    # "256 SHA256:abc… comment (ED25519)"
    return run(SSH_KEYGEN, "-l", "-E", "sha256", "-f", str(public)).split()[1]


def export(pair: Pair, fmt: str) -> str:
    return run(SSH_KEYGEN, "-e", "-m", fmt, "-f", str(pair.public))


def pkcs8(pair: Pair) -> str:
    """PKCS#8 PEM; this ssh-keygen cannot export Ed25519 that way, cryptography can."""
    if pair.line.startswith("ssh-ed25519"):
        key = load_ssh_public_key(pair.line.encode())
        return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return export(pair, "PKCS8")


@pytest.fixture(scope="module")
def keygen(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Pair]:
    directory = tmp_path_factory.mktemp("keys")
    made: dict[tuple[str, int | None], Pair] = {}

    def make(kind: str, bits: int | None = None) -> Pair:
        if (kind, bits) not in made:
            private = directory / f"id_{kind}_{bits}"
            args = [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", COMMENT, "-f", str(private)]
            if bits is not None:
                args += ["-b", str(bits)]
            subprocess.run(args, check=True, capture_output=True)
            made[kind, bits] = Pair(private, private.with_suffix(".pub"))
        return made[kind, bits]

    return make


@pytest.fixture(scope="module")
def dsa_pair(keygen: Callable[..., Pair], tmp_path_factory: pytest.TempPathFactory) -> Pair:
    try:
        return keygen("dsa")
    except subprocess.CalledProcessError:
        # Newer OpenSSH builds no longer make DSA keys; cryptography still can.
        directory = tmp_path_factory.mktemp("dsa")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            key = dsa.generate_private_key(1024).public_key()
            line = key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
        public = directory / "id_dsa.pub"
        public.write_text(f"{line} {COMMENT}\n")
        return Pair(directory / "id_dsa", public)


ACCEPTED = [
    ("ed25519", None, "ssh-ed25519", 256),
    ("ecdsa", 256, "ecdsa-sha2-nistp256", 256),
    ("ecdsa", 384, "ecdsa-sha2-nistp384", 384),
    ("ecdsa", 521, "ecdsa-sha2-nistp521", 521),
    ("rsa", 2048, "ssh-rsa", 2048),
    ("rsa", 3072, "ssh-rsa", 3072),
]


def refused(text: str) -> Invalid:
    with pytest.raises(Invalid) as caught:
        parse_public_key(text)
    assert caught.value.field == "public_key"
    assert caught.value.errors == {"public_key": caught.value.message}
    return caught.value


def assert_not_echoed(message: str, pasted: str) -> None:
    """No run of pasted text longer than an algorithm name comes back in the message."""
    for word in pasted.replace('"', " ").replace("=", " ").split():
        if len(word) >= 8 and not word.startswith(("ssh-", "ecdsa-")):
            assert word not in message


@pytest.mark.parametrize(("kind", "bits", "algorithm", "size"), ACCEPTED)
def test_openssh_line_is_accepted_with_ssh_keygen_fingerprint(
    keygen: Callable[..., Pair], kind: str, bits: int | None, algorithm: str, size: int
) -> None:
    pair = keygen(kind, bits)

    key = parse_public_key(pair.line)

    assert key.algorithm == algorithm
    assert key.bits == size
    assert key.fingerprint == pair.fingerprint
    assert key.comment == COMMENT
    assert key.openssh == pair.line.strip()
    assert fingerprint_of(key.openssh) == pair.fingerprint


@pytest.mark.parametrize(("kind", "bits", "algorithm", "size"), ACCEPTED)
def test_rfc4716_is_accepted(
    keygen: Callable[..., Pair], kind: str, bits: int | None, algorithm: str, size: int
) -> None:
    pair = keygen(kind, bits)
    text = export(pair, "RFC4716")
    assert text.startswith("---- BEGIN SSH2 PUBLIC KEY ----")

    key = parse_public_key(text)

    assert (key.algorithm, key.bits, key.fingerprint) == (algorithm, size, pair.fingerprint)
    assert key.openssh.split()[:2] == pair.line.split()[:2]
    assert "converted by" in key.comment


@pytest.mark.parametrize(("kind", "bits", "algorithm", "size"), ACCEPTED)
def test_pkcs8_pem_is_accepted(
    keygen: Callable[..., Pair], kind: str, bits: int | None, algorithm: str, size: int
) -> None:
    pair = keygen(kind, bits)
    text = pkcs8(pair)
    assert text.startswith("-----BEGIN PUBLIC KEY-----")

    key = parse_public_key(text)

    assert (key.algorithm, key.bits, key.fingerprint) == (algorithm, size, pair.fingerprint)
    assert key.openssh == " ".join(pair.line.split()[:2])
    assert key.comment == ""


def test_normalised_line_is_read_by_ssh_keygen(keygen: Callable[..., Pair], tmp_path: Path) -> None:
    pair = keygen("ecdsa", 384)
    key = parse_public_key(export(pair, "RFC4716"))
    stored = tmp_path / "stored.pub"
    stored.write_text(key.openssh + "\n")

    assert ssh_keygen_fingerprint(stored) == pair.fingerprint


def test_surrounding_whitespace_crlf_and_indent_are_tolerated(
    keygen: Callable[..., Pair],
) -> None:
    pair = keygen("ed25519")
    rfc = export(pair, "RFC4716")

    line_key = parse_public_key("\r\n  \t" + pair.line.strip() + " \r\n\r\n")
    block_key = parse_public_key("\n" + "\r\n".join("   " + x for x in rfc.splitlines()) + "\r\n")

    assert line_key.fingerprint == block_key.fingerprint == pair.fingerprint
    assert line_key.openssh == pair.line.strip()


def test_comment_whitespace_is_tidied(keygen: Callable[..., Pair]) -> None:
    algorithm, data = keygen("ed25519").line.split()[:2]

    key = parse_public_key(f"{algorithm}   {data}   build  server\t01 ")

    assert key.comment == "build server 01"
    assert key.openssh == f"{algorithm} {data} build server 01"


def test_rfc4716_with_continued_header_lines(keygen: Callable[..., Pair]) -> None:
    pair = keygen("ed25519")
    body = pair.line.split()[1]
    wrapped = "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
    text = (
        "---- BEGIN SSH2 PUBLIC KEY ----\n"
        'Comment: "a comment long enough that the exporting tool went on \\\n'
        'to the next line"\n'
        "x-Private-Header: something \\\n"
        "  continued\n"
        f"{wrapped}\n"
        "---- END SSH2 PUBLIC KEY ----\n"
    )

    key = parse_public_key(text)

    assert key.fingerprint == pair.fingerprint
    assert key.comment.startswith("a comment long enough")
    assert "next line" in key.comment


def test_small_rsa_is_refused_naming_its_size(keygen: Callable[..., Pair]) -> None:
    pair = keygen("rsa", 1024)

    for text in (pair.line, export(pair, "RFC4716"), export(pair, "PKCS8")):
        error = refused(text)
        assert "1024 bits" in error.message
        assert "2048" in error.message


def test_dsa_is_refused(dsa_pair: Pair) -> None:
    assert refused(dsa_pair.line).message == MSG_DSA
    assert MSG_DSA == "DSA keys are not accepted; use Ed25519, ECDSA or RSA of at least 2048 bits"


def test_dsa_is_refused_in_other_formats(keygen: Callable[..., Pair]) -> None:
    try:
        pair = keygen("dsa")
    except subprocess.CalledProcessError:
        pytest.skip("this ssh-keygen makes no DSA keys")
    assert refused(export(pair, "RFC4716")).message == MSG_DSA
    assert refused(export(pair, "PKCS8")).message == MSG_DSA


@pytest.mark.parametrize(
    "options",
    [
        'command="x"',
        'command="/usr/bin/rsync --server -e.LsfxC . /srv"',
        'from="10.0.0.0/8,192.168.1.1"',
        "no-pty",
        "restrict,no-port-forwarding",
        'environment="A=b",no-agent-forwarding',
    ],
)
def test_key_options_are_refused(keygen: Callable[..., Pair], options: str) -> None:
    pasted = f"{options} {keygen('ed25519').line}"

    error = refused(pasted)

    assert error.message == MSG_OPTIONS
    assert "command=" in MSG_OPTIONS


# ssh-keygen calls the OpenSSH private key format "RFC4716" here.
@pytest.mark.parametrize(
    ("private_format", "header"),
    [
        ("RFC4716", "-----BEGIN OPENSSH PRIVATE KEY-----"),
        ("PEM", "-----BEGIN RSA PRIVATE KEY-----"),
        ("PKCS8", "-----BEGIN PRIVATE KEY-----"),
    ],
)
def test_pasted_private_key_is_refused_without_echo(
    keygen: Callable[..., Pair], tmp_path: Path, private_format: str, header: str
) -> None:
    original = keygen("rsa", 2048)
    private = tmp_path / "id"
    private.write_bytes(original.private.read_bytes())
    private.chmod(0o600)
    # Rewrite the private key file in the requested format (no passphrase).
    run(SSH_KEYGEN, "-p", "-q", "-N", "", "-P", "", "-m", private_format, "-f", str(private))
    text = private.read_text()
    assert text.startswith(header)

    error = refused(text)

    assert error.message == MSG_PRIVATE
    assert "this is a private key; paste the public key" in error.message
    assert_not_echoed(error.message, text)


def test_private_key_with_public_key_pasted_together_is_refused(
    keygen: Callable[..., Pair],
) -> None:
    pair = keygen("ed25519")

    assert refused(pair.line + pair.private.read_text()).message == MSG_PRIVATE


@pytest.mark.parametrize("text", ["", "   ", "\r\n\r\n", "\t \n"])
def test_empty_input_is_refused(text: str) -> None:
    assert refused(text).message == MSG_EMPTY


def test_two_keys_are_refused(keygen: Callable[..., Pair]) -> None:
    first, second = keygen("ed25519"), keygen("ecdsa", 256)

    assert refused(first.line + second.line).message == MSG_MANY
    assert refused(first.line.strip() + " " + second.line).message == MSG_MANY
    assert refused(export(first, "RFC4716") + export(second, "RFC4716")).message == MSG_MANY
    assert refused(pkcs8(first) + pkcs8(second)).message == MSG_MANY
    assert refused(first.line + pkcs8(second)).message == MSG_MANY


def test_key_with_other_text_is_refused(keygen: Callable[..., Pair]) -> None:
    pair = keygen("ed25519")

    error = refused("here is my key:\n" + pair.line)

    assert error.message == MSG_EXTRA


def test_commented_lines_around_the_key_are_ignored(keygen: Callable[..., Pair]) -> None:
    pair = keygen("ed25519")

    key = parse_public_key("# deploy key\n" + pair.line)

    assert key.fingerprint == pair.fingerprint


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "correct horse battery staple",
        base64.b64encode(bytes(range(7, 103))).decode(),  # not a key; fixed: xdist collects alike
        "ssh-ed25519",
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PUBLIC KEY-----\n",
        "---- BEGIN SSH2 PUBLIC KEY ----\nbm90IGEga2V5IGF0IGFsbA==\n---- END SSH2 PUBLIC KEY ----",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n",
        "\x00\x01\x02binary\xff",
    ],
)
def test_garbage_is_refused_without_echo(text: str) -> None:
    error = refused(text)

    assert error.message in {MSG_NOT_A_KEY, MSG_DAMAGED}
    assert_not_echoed(error.message, text)


def test_truncated_key_is_refused(keygen: Callable[..., Pair]) -> None:
    algorithm, data = keygen("rsa", 2048).line.split()[:2]

    assert refused(f"{algorithm} {data[:120]}").message == MSG_DAMAGED
    assert refused(f"{algorithm} {data[:-3]}x==").message == MSG_DAMAGED


def test_key_type_that_does_not_match_the_data_is_refused(keygen: Callable[..., Pair]) -> None:
    data = keygen("ed25519").line.split()[1]

    assert refused(f"ssh-rsa {data}").message == MSG_DAMAGED


def test_certificate_is_refused(keygen: Callable[..., Pair], tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    run(SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(ca))
    user = tmp_path / "user"
    user.with_suffix(".pub").write_text(keygen("ed25519").line)
    run(
        SSH_KEYGEN, "-q", "-s", str(ca), "-I", "alice", "-n", "alice", str(user.with_suffix(".pub"))
    )
    certificate = (tmp_path / "user-cert.pub").read_text()
    assert certificate.startswith("ssh-ed25519-cert-v01@openssh.com ")

    assert refused(certificate).message == MSG_CERTIFICATE


def test_other_key_types_are_refused_by_name() -> None:
    blob = b"".join(len(part).to_bytes(4, "big") + part for part in (b"ssh-ed448", os.urandom(57)))
    pasted = "ssh-ed448 " + base64.b64encode(blob).decode()

    error = refused(pasted)

    assert error.message.startswith("ssh-ed448 keys are not accepted")
    assert "Ed25519, ECDSA or RSA" in error.message


def test_huge_input_is_refused() -> None:
    assert "too long" in refused("A" * 100_000).message


def test_fingerprint_of_matches_ssh_keygen(keygen: Callable[..., Pair]) -> None:
    for kind, bits in (("ed25519", None), ("ecdsa", 521), ("rsa", 3072)):
        pair = keygen(kind, bits)
        assert fingerprint_of(pair.line) == pair.fingerprint


def test_fingerprint_of_refuses_a_non_key() -> None:
    with pytest.raises(Invalid):
        fingerprint_of("ssh-ed25519")
    with pytest.raises(Invalid):
        fingerprint_of("ssh-ed25519 not*base64")


def test_generated_pair_works_with_openssh(tmp_path: Path) -> None:
    pair = generate_key_pair("dropyard partner-x")
    private = tmp_path / "id"
    private.write_text(pair.private_openssh)
    private.chmod(0o600)
    public = tmp_path / "id.pub"
    public.write_text(pair.public_openssh + "\n")

    derived = run(SSH_KEYGEN, "-y", "-f", str(private)).split()

    assert pair.private_openssh.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert derived[:2] == pair.public_openssh.split()[:2]
    assert pair.public_openssh.startswith("ssh-ed25519 ")
    assert pair.public_openssh.endswith(" dropyard partner-x")
    assert pair.fingerprint == ssh_keygen_fingerprint(public)
    assert parse_public_key(pair.public_openssh).fingerprint == pair.fingerprint
    assert "PRIVATE" not in repr(pair)


def test_generated_pairs_differ() -> None:
    first, second = generate_key_pair("a"), generate_key_pair("a")

    assert first.fingerprint != second.fingerprint
    assert first.private_openssh != second.private_openssh


def test_generated_pair_comment_is_one_line() -> None:
    pair = generate_key_pair("evil\ncomment\r\nhere")

    assert pair.public_openssh.endswith(" evil comment here")
    assert "\n" not in pair.public_openssh
