"""Generated logins and passwords, and their Argon2id hashes."""

from __future__ import annotations

import pytest

from dropyard.credentials import passwords
from dropyard.credentials.passwords import (
    LOGIN_PATTERN,
    PASSWORD_ALPHABET,
    dummy_verify,
    generate_login,
    generate_password,
    hash_password,
    needs_rehash,
    verify_password,
)


def test_password_length_and_charset() -> None:
    password = generate_password()

    assert len(password) == 32
    assert set(password) <= set(PASSWORD_ALPHABET)
    assert not set(password) & set("0O1lI")


def test_passwords_are_unique() -> None:
    generated = {generate_password() for _ in range(1000)}

    assert len(generated) == 1000


@pytest.mark.parametrize(
    ("hint", "prefix"),
    [
        ("ACME Corp", "acme-corp-"),
        ("Société Générale – SFTP", "societe-generale-sft"),
        ("!!!", "user-"),
        ("", "user-"),
        ("日本語", "user-"),
        ("--x--", "x-"),
        ("9lives", "9lives-"),
        ("a" * 80, "a" * 20 + "-"),
        ("abcdefghijklmnopqrs-tuvw", "abcdefghijklmnopqrs-"),
    ],
)
def test_login_is_a_slug_of_the_hint(hint: str, prefix: str) -> None:
    login = generate_login(hint)

    assert login.startswith(prefix)
    assert LOGIN_PATTERN.fullmatch(login)
    assert "--" not in login


def test_login_suffix_is_random_lowercase_alnum() -> None:
    logins = {generate_login("acme") for _ in range(1000)}

    assert len(logins) == 1000
    for login in logins:
        suffix = login.removeprefix("acme-")
        assert len(suffix) == 6
        assert suffix.isascii()
        assert suffix.isalnum()
        assert suffix == suffix.lower()


def test_hash_verifies_and_wrong_password_does_not() -> None:
    hashed = hash_password("correct horse")

    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "correct horsE")
    assert not verify_password(hashed, "")
    assert not needs_rehash(hashed)


def test_same_password_hashes_differently() -> None:
    assert hash_password("x") != hash_password("x")


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "garbage",
        "$argon2id$v=19$m=65536,t=3,p=4$abc",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$bm90IHRoZSByaWdodCBsZW5ndGg",
        "$2b$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzABCDE",
    ],
)
def test_malformed_hash_is_false_not_an_error(malformed: str) -> None:
    assert verify_password(malformed, "anything") is False
    assert needs_rehash(malformed) is True


def test_hash_with_weaker_parameters_needs_rehash() -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")

    assert verify_password(weak, "pw")
    assert needs_rehash(weak)


def test_dummy_verify_runs_and_uses_current_parameters() -> None:
    dummy_verify("whatever")
    # If the pinned parameters change, the dummy hash must follow, or timing leaks.
    assert not needs_rehash(passwords._DUMMY_HASH)
