"""Installation secrets: made once, the same on every node, imported from a node's old
files, sealed under the master key; the operator's own keys and certificate win."""

from __future__ import annotations

import threading
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import select
from tests.cluster.conftest import OTHER_MASTER_KEY, other_node
from tests.support import OPERATOR, unique

from dropyard.app import Dropyard, build
from dropyard.cluster.models import InstallationSecret
from dropyard.cluster.secrets import CANARY, InstallationSecrets, MasterKeyMismatch
from dropyard.credentials.service import NewCredentialInput
from dropyard.errors import Invalid
from dropyard.gateway.sftp import load_host_keys
from dropyard.gateway.tls import (
    certificate_for,
    ensure_certificate,
    fingerprint,
    server_context,
)
from dropyard.settings import Settings


def public_keys(pairs: list[asyncssh.SSHKeyPair]) -> set[bytes]:
    return {pair.public_data for pair in pairs}


def test_racing_nodes_all_get_the_secret_that_was_stored_first(
    app: Dropyard, node_b: Dropyard
) -> None:
    nodes = [app.installation, node_b.installation] * 4
    start = threading.Barrier(len(nodes))
    got: list[bytes] = []

    def take(index: int, secrets: InstallationSecrets) -> None:
        start.wait()
        got.append(secrets.get_or_create("race", lambda: f"made by {index}".encode()))

    threads = [threading.Thread(target=take, args=(i, s)) for i, s in enumerate(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == len(nodes)
    assert len(set(got)) == 1
    assert node_b.installation.get("race") == got[0]
    with app.sessions() as session:
        sealed = session.scalar(
            select(InstallationSecret.sealed).where(InstallationSecret.name == "race")
        )
    assert sealed is not None and got[0] not in sealed  # stored sealed, not in clear


def test_two_nodes_present_the_same_host_keys_and_certificate(
    app: Dropyard, node_b: Dropyard
) -> None:
    keys_a = load_host_keys(app.settings.keys_dir, shared=app.installation)
    keys_b = load_host_keys(node_b.settings.keys_dir, shared=node_b.installation)
    assert public_keys(keys_a) == public_keys(keys_b)
    assert {p.algorithm for p in keys_a} == {b"ssh-ed25519", b"ssh-rsa"}
    rsa = next(p for p in keys_a if p.algorithm != b"ssh-ed25519")
    assert set(rsa.host_key_algorithms) == {b"rsa-sha2-512", b"rsa-sha2-256"}  # no SHA-1
    cert_a, _ = certificate_for(app.settings, shared=app.installation)
    cert_b, key_b = certificate_for(node_b.settings, shared=node_b.installation)
    assert fingerprint(cert_a) == fingerprint(cert_b)
    assert cert_b.parent == node_b.settings.keys_dir
    assert key_b.stat().st_mode & 0o077 == 0
    # A restart keeps them.
    again = load_host_keys(app.settings.keys_dir, shared=app.installation)
    assert public_keys(again) == public_keys(keys_a)


def test_an_upgraded_single_node_keeps_its_old_host_keys_and_certificate(
    app: Dropyard, node_b: Dropyard
) -> None:
    # Files made by an earlier version: one set per node.
    old_keys = load_host_keys(app.settings.keys_dir)
    old_cert, _ = ensure_certificate(app.settings.keys_dir, hostname="127.0.0.1")
    old_b_keys = load_host_keys(node_b.settings.keys_dir)
    old_b_cert, _ = ensure_certificate(node_b.settings.keys_dir, hostname="127.0.0.1")
    expected = fingerprint(old_cert)
    assert fingerprint(old_b_cert) != expected

    # Node A upgrades first: the installation takes its files.
    assert public_keys(load_host_keys(app.settings.keys_dir, shared=app.installation)) == (
        public_keys(old_keys)
    )
    assert fingerprint(certificate_for(app.settings, shared=app.installation)[0]) == expected
    # Node B presents node A's, not its own old ones.
    keys_b = load_host_keys(node_b.settings.keys_dir, shared=node_b.installation)
    assert public_keys(keys_b) == public_keys(old_keys) != public_keys(old_b_keys)
    cert_b, key_b = certificate_for(node_b.settings, shared=node_b.installation)
    assert fingerprint(cert_b) == expected
    # and its copy on disk now is a working pair (what FTPS loads).
    server_context(cert_b, key_b)


def test_damaged_old_files_are_not_imported(app: Dropyard) -> None:
    keys_dir = app.settings.keys_dir
    keys_dir.mkdir(parents=True, exist_ok=True)
    (keys_dir / "ssh_host_ed25519_key").write_text("not a key\n")
    (keys_dir / "tls.crt").write_text("not a certificate\n")
    (keys_dir / "tls.key").write_text("not a key\n")
    keys = load_host_keys(keys_dir, shared=app.installation)
    assert len(keys) == 2  # made afresh
    cert, _ = certificate_for(app.settings, shared=app.installation)
    assert fingerprint(cert)  # the damaged file was replaced by a good certificate


def test_operator_host_keys_win_over_the_installation_ones(app: Dropyard, tmp_path: Path) -> None:
    load_host_keys(app.settings.keys_dir, shared=app.installation)
    own = tmp_path / "own_ed25519"
    own.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    own.chmod(0o600)
    keys = load_host_keys(app.settings.keys_dir, shared=app.installation, files=[own])
    assert public_keys(keys) == {asyncssh.read_private_key(str(own)).public_data}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot be read"),
        (b"hello\n", "is not an unencrypted OpenSSH or PEM private key"),
        ("encrypted", "is not an unencrypted OpenSSH or PEM private key"),
        ("rsa-1024", "holds a ssh-rsa (1024 bits) key; use Ed25519 or RSA of 2048 bits"),
        ("ecdsa", "holds a ecdsa-sha2-nistp256 key; use Ed25519 or RSA"),
    ],
)
def test_unusable_operator_host_keys_are_refused_by_name(
    tmp_path: Path, content: bytes | str | None, message: str
) -> None:
    path = tmp_path / "host_key"
    if content == "encrypted":
        key = asyncssh.generate_private_key("ssh-ed25519")
        path.write_bytes(key.export_private_key("pkcs8-pem", passphrase="secret"))
    elif content == "rsa-1024":
        path.write_bytes(
            asyncssh.generate_private_key("ssh-rsa", key_size=1024).export_private_key()
        )
    elif content == "ecdsa":
        path.write_bytes(asyncssh.generate_private_key("ecdsa-sha2-nistp256").export_private_key())
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(Invalid) as raised:
        load_host_keys(tmp_path / "keys", files=[path])
    assert str(path) in raised.value.message
    assert message in raised.value.message
    assert raised.value.field == "ssh_host_key_files"


def test_operator_certificate_wins_and_a_broken_one_is_refused(
    app: Dropyard, tmp_path: Path
) -> None:
    own_cert, own_key = ensure_certificate(tmp_path / "own", hostname="files.example")
    chosen = app.settings.model_copy(update={"tls_cert_file": own_cert, "tls_key_file": own_key})
    assert certificate_for(chosen, shared=app.installation) == (own_cert, own_key)
    assert app.installation.get("tls_certificate") is None  # nothing made for nobody

    missing = app.settings.model_copy(update={"tls_cert_file": tmp_path / "nope.crt"})
    with pytest.raises(Invalid, match=r"nope\.crt .* cannot be loaded"):
        certificate_for(missing, shared=app.installation)
    mismatched_key = ensure_certificate(tmp_path / "other", hostname="x")[1]
    mixed = app.settings.model_copy(
        update={"tls_cert_file": own_cert, "tls_key_file": mismatched_key}
    )
    with pytest.raises(Invalid, match="cannot be loaded"):
        certificate_for(mixed, shared=app.installation)


def test_a_node_with_another_master_key_is_refused(
    app: Dropyard, settings: Settings, tmp_path: Path
) -> None:
    app.installation.check_master_key()  # the first node leaves its canary
    load_host_keys(app.settings.keys_dir, shared=app.installation)
    stranger = build(other_node(settings, tmp_path / "stranger", master_key=OTHER_MASTER_KEY))
    try:
        with pytest.raises(MasterKeyMismatch) as raised:
            stranger.installation.check_master_key()
        assert "same master key" in raised.value.message
        with pytest.raises(MasterKeyMismatch):
            load_host_keys(stranger.settings.keys_dir, shared=stranger.installation)
        assert not (stranger.settings.keys_dir / "ssh_host_ed25519_key").exists()
    finally:
        stranger.close()
    # The right key still opens everything.
    app.installation.check_master_key()


def test_an_upgraded_installation_is_guarded_by_its_sealed_credentials_too(
    app: Dropyard, settings: Settings, tmp_path: Path
) -> None:
    # Before any installation secret exists, a partner's password sealed by the old
    # single node decides which master key is right: the wrong one leaves no canary.
    account = app.accounts.create_account(OPERATOR, name=unique("Brand"), kind="brand")
    app.credentials.create(
        OPERATOR,
        account=account.id,
        spec=NewCredentialInput(
            kind="remote_password", name="theirs", username="bob", password="s3cret-s3cret"
        ),
    )
    stranger = build(other_node(settings, tmp_path / "stranger", master_key=OTHER_MASTER_KEY))
    try:
        with pytest.raises(MasterKeyMismatch):
            stranger.installation.check_master_key()
    finally:
        stranger.close()
    assert app.installation.get(CANARY) is None
    app.installation.check_master_key()
    assert app.installation.get(CANARY) is not None
