"""Sealing secrets under the master key, and finding or creating that key."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from dropyard.credentials.secrets import SecretBox, SecretError, load_or_create_master_key
from dropyard.errors import Invalid, Terminal

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SECRET = b"partner-sftp-password: hunter2-but-longer"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_round_trip() -> None:
    box = SecretBox(KEY)

    sealed = box.seal(SECRET, context="credential_secret:1")

    assert box.open(sealed, context="credential_secret:1") == SECRET
    assert SecretBox(KEY).open(sealed, context="credential_secret:1") == SECRET


def test_empty_plaintext_round_trips() -> None:
    box = SecretBox(KEY)

    assert box.open(box.seal(b"", context="c"), context="c") == b""


def test_sealed_bytes_hide_the_plaintext_and_differ_each_time() -> None:
    box = SecretBox(KEY)

    first = box.seal(SECRET, context="c")
    second = box.seal(SECRET, context="c")

    assert SECRET not in first
    assert b"hunter2" not in first
    assert first != second
    assert first[0] == 1
    assert len(first) == 1 + 12 + len(SECRET) + 16


def test_wrong_context_fails() -> None:
    box = SecretBox(KEY)
    sealed = box.seal(SECRET, context="credential_secret:1")

    with pytest.raises(SecretError) as caught:
        box.open(sealed, context="credential_secret:2")

    assert isinstance(caught.value, Terminal)
    assert "hunter2" not in caught.value.message


@pytest.mark.parametrize("position", [0, 1, 12, 13, -1])
def test_tampered_byte_fails(position: int) -> None:
    box = SecretBox(KEY)
    sealed = bytearray(box.seal(SECRET, context="c"))
    sealed[position] ^= 0x01

    with pytest.raises(SecretError):
        box.open(bytes(sealed), context="c")


def test_truncated_fails() -> None:
    box = SecretBox(KEY)
    sealed = box.seal(SECRET, context="c")

    for cut in (0, 5, 28, len(sealed) - 1):
        with pytest.raises(SecretError):
            box.open(sealed[:cut], context="c")


def test_wrong_key_fails() -> None:
    sealed = SecretBox(KEY).seal(SECRET, context="c")

    with pytest.raises(SecretError) as caught:
        SecretBox(OTHER_KEY).open(sealed, context="c")

    assert "master key" in caught.value.message


def test_empty_context_is_refused() -> None:
    with pytest.raises(Invalid):
        SecretBox(KEY).seal(SECRET, context="")


def test_repr_hides_the_key() -> None:
    box = SecretBox(KEY)

    text = repr(box) + str(box)

    assert KEY.hex() not in text
    assert base64.b64encode(KEY).decode() not in text
    assert "hidden" in repr(box)


def test_key_of_wrong_length_is_refused() -> None:
    with pytest.raises(Invalid):
        SecretBox(b"short")


def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys" / "master.key"

    first = load_or_create_master_key(path, None)
    second = load_or_create_master_key(path, None)

    assert len(first) == 32
    assert first == second
    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700
    assert mode_of(tmp_path / "state") == 0o700
    assert base64.b64decode(path.read_text().strip()) == first
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]


def test_key_file_is_created_0600_under_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = tmp_path / "new" / "master.key"
        load_or_create_master_key(path, None)
    finally:
        os.umask(previous)

    assert mode_of(path) == 0o600
    assert mode_of(path.parent) == 0o700


def test_existing_directory_permissions_are_left_alone(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)

    load_or_create_master_key(tmp_path / "master.key", None)

    assert mode_of(tmp_path) == 0o755


def test_existing_key_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text(base64.b64encode(KEY).decode() + "\n")
    path.chmod(0o600)

    assert load_or_create_master_key(path, None) == KEY


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    load_or_create_master_key(path, None)
    path.chmod(mode)

    with pytest.raises(Terminal) as caught:
        load_or_create_master_key(path, None)

    assert str(path) in caught.value.message
    assert "chmod 600" in caught.value.message


def test_key_file_with_bad_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text(base64.b64encode(b"sixteen byte key").decode())
    path.chmod(0o600)

    with pytest.raises(Invalid) as caught:
        load_or_create_master_key(path, None)

    assert "16 bytes" in caught.value.message


def test_configured_key_is_used_and_no_file_is_made(tmp_path: Path) -> None:
    path = tmp_path / "master.key"

    key = load_or_create_master_key(path, base64.b64encode(OTHER_KEY).decode())

    assert key == OTHER_KEY
    assert not path.exists()


def test_configured_key_in_url_safe_base64_is_accepted(tmp_path: Path) -> None:
    key = bytes([0xFB, 0xFF] * 16)

    assert load_or_create_master_key(tmp_path / "k", base64.urlsafe_b64encode(key).decode()) == key


@pytest.mark.parametrize(
    "configured",
    [
        base64.b64encode(b"x" * 16).decode(),
        base64.b64encode(b"x" * 33).decode(),
        "not base64 at all!",
        "",
        "   ",
    ],
)
def test_configured_key_of_wrong_length_or_format_is_refused(
    tmp_path: Path, configured: str
) -> None:
    with pytest.raises(Invalid) as caught:
        load_or_create_master_key(tmp_path / "master.key", configured)

    assert "DROPYARD_MASTER_KEY" in caught.value.message
    assert "32" in caught.value.message
    if configured.strip():
        assert configured not in caught.value.message
