"""The PROXY protocol parser and readers: every header form a balancer sends, every way a
header can be wrong, and reading exactly the header so the protocol's bytes stay put."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from dropyard.errors import Invalid
from dropyard.gateway.proxy_protocol import (
    V2_MAX,
    ProxyHeader,
    ProxyHeaderError,
    ProxyPolicy,
    parse,
    read_header,
    read_header_async,
    remaining,
)
from dropyard.settings import Settings
from tests.deploy.headers import SIGNATURE, tlv, v1, v2, v2_local

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2\r\n"


# -- parsing ----------------------------------------------------------------------------


def test_v1_tcp4_names_the_client() -> None:
    header = parse(b"PROXY TCP4 192.0.2.7 10.0.0.5 51000 22\r\n")
    assert header == ProxyHeader(1, ("192.0.2.7", 51000), ("10.0.0.5", 22))
    assert header.client(("10.0.0.9", 1)) == ("192.0.2.7", 51000)


def test_v1_tcp6_names_the_client() -> None:
    header = parse(v1("2001:db8::7", "2001:db8::1", 51000, 21))
    assert header.source == ("2001:db8::7", 51000)


def test_v1_unknown_means_the_balancer_itself() -> None:
    header = parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")
    assert header.source is None
    assert header.client(("10.0.0.9", 4000)) == ("10.0.0.9", 4000)


def test_v2_tcp4_and_tcp6_name_the_client_and_skip_tlvs() -> None:
    four = parse(v2("192.0.2.7", "10.0.0.5", 51000, 22, tlvs=tlv(0x05, b"unique-id")))
    assert four == ProxyHeader(2, ("192.0.2.7", 51000), ("10.0.0.5", 22))
    six = parse(v2("2001:db8::7", "2001:db8::1", 51000, 25, tlvs=tlv(0x01, b"h2")))
    assert six.source == ("2001:db8::7", 51000)


def test_v2_ipv4_mapped_source_is_plain_ipv4() -> None:
    assert parse(v2("::ffff:192.0.2.7", "::1")).source == ("192.0.2.7", 40000)


def test_v2_local_is_a_health_check_from_the_balancer() -> None:
    assert parse(v2_local()).source is None
    # LOCAL may still carry an address block and TLVs; both are ignored.
    assert parse(v2_local(b"\x00" * 12 + tlv(0x04, b""))).source is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (SSH_BANNER, "did not start with a PROXY header"),
        (b"GET / HTTP/1.1\r\n", "did not start with a PROXY header"),
        (b"PROXY UDP4 192.0.2.7 10.0.0.5 1 2\r\n", "malformed"),
        (b"PROXY TCP4 2001:db8::7 10.0.0.5 1 2\r\n", "non-IPv4 address"),
        (b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n", "non-IPv6 address"),
        (b"PROXY TCP4 192.0.2.300 10.0.0.5 1 2\r\n", "malformed address"),
        (b"PROXY TCP4 192.0.2.7 10.0.0.5 70000 2\r\n", "port out of range"),
        (b"PROXY TCP4 192.0.2.7 10.0.0.5 022 2\r\n", "malformed port"),
        (b"PROXY TCP4 192.0.2.7 10.0.0.5 -1 2\r\n", "malformed port"),
        (b"PROXY TCP4 192.0.2.7 10.0.0.5 1 2 extra\r\n", "malformed"),
        (b"PROXY TCP4  192.0.2.7 10.0.0.5 1 2\r\n", "malformed"),
        (b"PROXY TCP4 192.0.2.7 10.0.0.5 1 2\n", "does not end with CRLF"),
        (b"PROXYTCP4 192.0.2.7 10.0.0.5 1 2\r\n", "malformed"),
        (SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x0c" + b"\x00" * 12, "did not start"),
        (SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "unknown version"),
        (SIGNATURE + b"\x22\x11\x00\x0c" + b"\x00" * 12, "unknown command"),
        (SIGNATURE + b"\x21\x12\x00\x0c" + b"\x00" * 12, "not for TCP over IPv4 or IPv6"),
        (SIGNATURE + b"\x21\x31\x00\xd8" + b"\x00" * 216, "not for TCP over IPv4 or IPv6"),
        (SIGNATURE + b"\x21\x11\x00\x08" + b"\x00" * 8, "not for TCP over IPv4 or IPv6"),
        (SIGNATURE + b"\x21\x21\x00\x0c" + b"\x00" * 12, "not for TCP over IPv4 or IPv6"),
        (SIGNATURE + b"\x21\x11\x00\x0c" + b"\x00" * 4, "truncated"),
    ],
)
def test_a_garbled_header_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=message):
        _read_all(data)


def _read_all(data: bytes) -> ProxyHeader:
    """What a reader does with `data` arriving whole: delimit, then parse."""
    if remaining(data) not in (0, None):
        raise ProxyHeaderError("truncated")
    return parse(data)


def test_remaining_asks_for_exactly_the_header() -> None:
    assert remaining(b"") == 5
    assert remaining(b"PRO") == 2
    assert remaining(b"PROXY") is None  # a v1 line: up to its LF
    assert remaining(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n") == 0
    header = v2("192.0.2.7", tlvs=tlv(0x05, b"id"))
    assert remaining(header[:5]) == 11
    assert remaining(header[:16]) == len(header) - 16
    assert remaining(header) == 0


def test_overlong_headers_are_refused_before_they_are_read() -> None:
    with pytest.raises(ProxyHeaderError, match="longer than 107"):
        remaining(b"PROXY " + b"1" * 101)
    big = SIGNATURE + b"\x21\x11" + (V2_MAX).to_bytes(2, "big")
    with pytest.raises(ProxyHeaderError, match="v2 header is longer"):
        remaining(big)
    with pytest.raises(ProxyHeaderError, match="did not start"):
        remaining(b"SSH")


# -- who may send one -------------------------------------------------------------------


def test_policy_is_off_by_default_and_needs_trusted_networks_when_on() -> None:
    assert ProxyPolicy.from_settings(Settings()) is None
    with pytest.raises(Invalid, match="proxy_trusted is empty") as refused:
        ProxyPolicy.from_settings(Settings(proxy_protocol=True))
    assert refused.value.field == "proxy_trusted"
    policy = ProxyPolicy.from_settings(
        Settings(proxy_protocol=True, proxy_trusted=["10.0.0.0/24", "fd00::/64"])
    )
    assert policy is not None
    assert policy.trusts("10.0.0.5")
    assert policy.trusts("::ffff:10.0.0.5")
    assert policy.trusts("fd00::9")
    assert not policy.trusts("10.0.1.5")
    assert not policy.trusts("not-an-address")


def test_a_trusted_network_that_is_not_a_network_is_refused() -> None:
    with pytest.raises(ValidationError, match="proxy_trusted"):
        Settings(proxy_protocol=True, proxy_trusted=["10.0.0.0/33"])


# -- reading exactly the header ---------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def _trickle(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send a byte at a time, as a slow network would deliver it."""

    def run() -> None:
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(0.002)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "header", [v1("192.0.2.7"), v2("192.0.2.7", tlvs=tlv(5, b"x" * 40))], ids=["v1", "v2"]
)
def test_read_header_leaves_the_protocols_bytes_in_the_socket(
    pair: tuple[socket.socket, socket.socket], header: bytes
) -> None:
    server, client = pair
    server.setblocking(False)
    client.sendall(header + SSH_BANNER)
    assert read_header(server, timeout=2).source == ("192.0.2.7", 40000)
    assert server.gettimeout() == 0.0  # left non-blocking, as pyftpdlib keeps it
    server.setblocking(True)
    assert server.recv(100) == SSH_BANNER


@pytest.mark.parametrize("header", [v1("192.0.2.8"), v2("192.0.2.8")], ids=["v1", "v2"])
def test_read_header_waits_for_a_header_sent_in_pieces(
    pair: tuple[socket.socket, socket.socket], header: bytes
) -> None:
    server, client = pair
    sender = _trickle(client, header + b"220")
    assert read_header(server, timeout=5).source == ("192.0.2.8", 40000)
    sender.join(5)


def test_read_header_gives_up_after_the_timeout(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    client.sendall(b"PROXY TCP4 192.0.2.7")  # and nothing more
    started = time.monotonic()
    with pytest.raises(ProxyHeaderError, match=r"within 0\.3 s"):
        read_header(server, timeout=0.3)
    assert time.monotonic() - started < 2


def test_read_header_notices_a_peer_that_hangs_up(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    client.sendall(v2("192.0.2.7")[:20])
    client.close()
    with pytest.raises(ProxyHeaderError, match="closed before"):
        read_header(server, timeout=2)


@pytest.mark.parametrize(
    "header",
    [v1("2001:db8::7", "2001:db8::1"), v2("2001:db8::7", "2001:db8::1", tlvs=tlv(1, b"h2"))],
    ids=["v1", "v2"],
)
def test_read_header_async_leaves_the_protocols_bytes_in_the_socket(
    pair: tuple[socket.socket, socket.socket], header: bytes
) -> None:
    server, client = pair
    server.setblocking(False)
    sender = _trickle(client, header + SSH_BANNER)
    found = asyncio.run(read_header_async(server, timeout=5))
    assert found.source == ("2001:db8::7", 40000)
    sender.join(5)
    server.setblocking(True)
    assert server.recv(100) == SSH_BANNER


def test_read_header_async_gives_up_after_the_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    server.setblocking(False)
    client.sendall(b"PROXY TCP4 192.0.2.7")
    with pytest.raises(ProxyHeaderError, match=r"within 0\.3 s"):
        asyncio.run(read_header_async(server, timeout=0.3))


def test_read_header_async_refuses_a_connection_that_speaks_first(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    server.setblocking(False)
    client.sendall(SSH_BANNER)
    with pytest.raises(ProxyHeaderError, match="did not start with a PROXY header"):
        asyncio.run(read_header_async(server, timeout=2))
