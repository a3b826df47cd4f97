"""PROXY protocol headers as a load balancer sends them, built by hand from the spec (so
they check the parser rather than mirror it)."""

from __future__ import annotations

import struct
from ipaddress import ip_address

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(source: str, destination: str = "127.0.0.1", sport: int = 40000, dport: int = 22) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {destination} {sport} {dport}\r\n".encode()


def v2(
    source: str,
    destination: str = "127.0.0.1",
    sport: int = 40000,
    dport: int = 22,
    *,
    tlvs: bytes = b"",
) -> bytes:
    src, dst = ip_address(source), ip_address(destination)
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", sport, dport) + tlvs
    return SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def v2_local(extra: bytes = b"") -> bytes:
    """LOCAL: the balancer's own connection (health checks); HAProxy sends no address."""
    return SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", len(extra)) + extra


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value
