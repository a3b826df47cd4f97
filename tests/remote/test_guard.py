"""The network guard: partners' hosts must be public, in every spelling of an address."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from ipaddress import ip_network
from typing import Any

import pytest

from dropyard.remote.base import RemoteError, RemoteRefused
from dropyard.remote.guard import NetworkGuard
from dropyard.remote.limits import remote_limits
from dropyard.settings import Settings

Answer = tuple[Any, Any, Any, Any, tuple[Any, ...]]


def answers(*addresses: str) -> list[Answer]:
    found: list[Answer] = []
    for address in addresses:
        if ":" in address:
            found.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, 22, 0, 0)))
        else:
            found.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 22)))
    return found


class FakeDns:
    """Answers each lookup with the next list of addresses (the last one repeats)."""

    def __init__(self, *rounds: Sequence[str]) -> None:
        self.rounds = [list(r) for r in rounds]
        self.asked: list[tuple[str, int, int, int]] = []

    def __call__(self, host: str, port: int, family: int, kind: int) -> list[Answer]:
        self.asked.append((host, port, family, kind))
        index = min(len(self.asked), len(self.rounds)) - 1
        return answers(*self.rounds[index])


def guard_for(*addresses: str, allow: Sequence[str] = ()) -> NetworkGuard:
    return NetworkGuard([ip_network(a) for a in allow], resolver=FakeDns(addresses))


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.5", "10.0.0.5, a private address"),
        ("172.16.3.4", "a private address"),
        ("192.168.1.10", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.10.1", "a link-local address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("224.0.0.251", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("0.0.0.0", "an unspecified address"),
        ("192.0.2.7", "a private address"),  # documentation range
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1%eth0", "a link-local address"),
        ("fc00::1", "a private address"),
        ("fd00:ec2::254", "a private address"),  # AWS metadata over IPv6
        ("fec0::1", "a private address"),  # site-local
        ("ff02::1", "a multicast address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("::10.0.0.1", "which stands for 10.0.0.1, a private address"),
        ("64:ff9b::a00:1", "which stands for 10.0.0.1, a private address"),
        ("64:ff9b::7f00:1", "which stands for 127.0.0.1, a loopback address"),
        ("64:ff9b::a9fe:a9fe", "which stands for 169.254.169.254, a cloud metadata address"),
        ("2002:a00:1::1", "which stands for 10.0.0.1, a private address"),
        ("2002:7f00:1::", "which stands for 127.0.0.1, a loopback address"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "which stands for 192.0.2.45"),  # Teredo
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(RemoteRefused) as refused:
        guard_for(address).check("partner.example", 22)
    assert refused.value.stage == "reach"
    message = refused.value.message
    assert message.startswith("host 'partner.example' resolves to ")
    assert reason in message
    assert message.endswith("an operator can allow it with DROPYARD_ALLOW_NETWORKS")


@pytest.mark.parametrize(
    ("address", "connect_to"),
    [
        ("93.184.216.34", "93.184.216.34"),
        ("2606:4700::1111", "2606:4700::1111"),
        ("::ffff:93.184.216.34", "93.184.216.34"),  # the same host: connect over IPv4
        ("64:ff9b::5db8:d822", "64:ff9b::5db8:d822"),  # NAT64 of a public address
        ("2002:5db8:d822::1", "2002:5db8:d822::1"),  # 6to4 of a public address
    ],
)
def test_public_addresses_pass(address: str, connect_to: str) -> None:
    assert guard_for(address).check("partner.example", 22) == connect_to


def test_one_private_answer_among_public_ones_refuses_the_host() -> None:
    guard = guard_for("93.184.216.34", "10.1.2.3", "2606:4700::1111")
    with pytest.raises(RemoteRefused, match=r"resolves to 10\.1\.2\.3, a private address"):
        guard.check("partner.example", 22)


def test_a_dns_name_resolving_to_a_private_address_is_refused() -> None:
    dns = FakeDns(["10.0.0.7"])
    with pytest.raises(RemoteRefused) as refused:
        NetworkGuard([], resolver=dns).check("files.partner.example", 22)
    assert refused.value.message == (
        "host 'files.partner.example' resolves to 10.0.0.7, a private address; "
        "an operator can allow it with DROPYARD_ALLOW_NETWORKS"
    )
    assert dns.asked == [("files.partner.example", 22, socket.AF_UNSPEC, socket.SOCK_STREAM)]


def test_the_allow_list_lets_an_operator_reach_a_private_network() -> None:
    assert guard_for("10.0.0.5", allow=["10.0.0.0/8"]).check("build.internal", 22) == "10.0.0.5"
    # the spelling does not matter: a mapped or NAT64 address of an allowed one is allowed
    assert guard_for("::ffff:10.0.0.5", allow=["10.0.0.0/8"]).check("x", 22) == "10.0.0.5"
    assert guard_for("64:ff9b::a00:5", allow=["10.0.0.0/8"]).check("x", 22) == "64:ff9b::a00:5"
    # ... and only the networks listed
    with pytest.raises(RemoteRefused, match=r"192\.168\.0\.5"):
        guard_for("192.168.0.5", allow=["10.0.0.0/8"]).check("x", 22)
    with pytest.raises(RemoteRefused, match="a loopback address"):
        guard_for("::1", allow=["127.0.0.0/8"]).check("x", 22)


# Real resolution (glibc getaddrinfo) normalises the odd spellings of an IPv4 address.
@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "127.0.0.1",
        "2130706433",  # decimal
        "0x7f000001",  # hex
        "0177.0.0.1",  # octal
        "017700000001",  # octal, one number
        "127.1",  # short form
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "::1",
        "[::1]",
        "0",
        "0.0.0.0",
    ],
)
def test_every_spelling_of_this_machine_is_refused(host: str) -> None:
    with pytest.raises(RemoteRefused) as refused:
        NetworkGuard([]).check(host, 22)
    assert refused.value.stage == "reach"
    assert "address; an operator can allow it" in refused.value.message


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f000001", "127.1"])
def test_an_allowed_loopback_resolves_to_one_plain_address(host: str) -> None:
    guard = NetworkGuard([ip_network("127.0.0.0/8")])
    assert guard.check(host, 22) == "127.0.0.1"


def test_an_unknown_host_is_a_reach_error() -> None:
    with pytest.raises(RemoteError) as failed:
        NetworkGuard([]).check("no-such-host.invalid", 22)
    assert not isinstance(failed.value, RemoteRefused)  # DNS may answer later: retry
    assert failed.value.stage == "reach"
    assert failed.value.message == "host 'no-such-host.invalid' could not be resolved"


@pytest.mark.parametrize(
    ("host", "port", "message"),
    [
        ("", 22, "no host name was given"),
        ("  ", 22, "no host name was given"),
        ("partner.example", 0, "port 0 is not a valid TCP port"),
        ("partner.example", 70000, "port 70000 is not a valid TCP port"),
    ],
)
def test_nonsense_is_refused_before_any_lookup(host: str, port: int, message: str) -> None:
    dns = FakeDns(["93.184.216.34"])
    with pytest.raises(RemoteRefused, match=message):
        NetworkGuard([], resolver=dns).check(host, port)
    assert dns.asked == []


def test_a_name_that_cannot_be_encoded_is_unresolvable_not_a_crash() -> None:
    with pytest.raises(RemoteError, match="could not be resolved"):
        NetworkGuard([]).check("a" * 64 + ".example", 22)  # a label over 63 characters


def test_limits_come_from_the_settings(tmp_path: Any) -> None:
    settings = Settings(
        data_dir=tmp_path,
        remote_connect_timeout=3,
        remote_idle_timeout=7,
        remote_max_file_bytes=1000,
        remote_max_listing=50,
        remote_max_run_seconds=120,
    )
    before = time.monotonic()
    limits = remote_limits(settings)
    assert (limits.connect_timeout, limits.idle_timeout) == (3, 7)
    assert (limits.max_file_bytes, limits.max_listing) == (1000, 50)
    assert before + 119 < limits.deadline <= time.monotonic() + 120
    defaults = Settings(data_dir=tmp_path)
    assert defaults.remote_max_file_bytes == 2 * 1024**3
    assert defaults.remote_stable_check is True


def test_limit_settings_are_read_from_the_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DROPYARD_REMOTE_IDLE_TIMEOUT", "5")
    monkeypatch.setenv("DROPYARD_REMOTE_STABLE_CHECK", "false")
    settings = Settings(data_dir=tmp_path)
    assert settings.remote_idle_timeout == 5
    assert settings.remote_stable_check is False
