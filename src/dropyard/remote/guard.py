"""The network guard: a pull or delivery never reaches into the networks Dropyard runs in.

A connection names a partner's host; a hostile or mistaken one could name Dropyard's own
database, a cloud metadata service or anything else behind the firewall. The guard resolves
the name once, refuses it when any address it resolves to is not public (in any spelling:
IPv4-mapped IPv6, NAT64, 6to4, decimal or hex IPv4, ...), unless an operator allowed that
network, and returns the one address the client must connect to. Clients never resolve the
name again, so a name that answers differently a second later cannot slip past.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

from dropyard.remote.base import RemoteError, RemoteRefused

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
# socket.getaddrinfo(host, port, family, type) and anything shaped like it (tests).
Resolver = Callable[[str, int, int, int], Sequence[tuple[Any, Any, Any, Any, tuple[Any, ...]]]]

_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT; also Alibaba's metadata address
_METADATA = (IPv4Address("169.254.169.254"), IPv4Address("100.100.100.200"))
_NAT64 = IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = IPv6Network("::/96")
_HOW_TO_ALLOW = "an operator can allow it with DROPYARD_ALLOW_NETWORKS"


def _shown(host: str) -> str:
    """A host name as it may appear in a message: printable and of bounded length."""
    text = "".join(ch if ch.isprintable() else "?" for ch in host)
    return text if len(text) <= 100 else text[:100] + "..."


def _parse(text: str) -> IPAddress:
    return ip_address(text.partition("%")[0])  # drop an IPv6 zone id ("fe80::1%eth0")


def _embedded_v4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (NAT64, 6to4, IPv4-compatible)."""
    if address in _NAT64 or (address in _V4_COMPATIBLE and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _v4_reason(address: IPv4Address) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-public address"
    return None


def _v6_reason(address: IPv6Address) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_site_local or address.is_private:
        return "a private address"
    if address in _NAT64:
        return None  # judged by the IPv4 address it translates to
    if address.is_reserved or not address.is_global:
        return "a non-public address"
    return None


def refusal_reason(address: IPAddress) -> str | None:
    """Why this address is not public ("a private address", ...), or None when it is."""
    if isinstance(address, IPv4Address):
        return _v4_reason(address)
    if address.ipv4_mapped is not None:
        return _v4_reason(address.ipv4_mapped)
    embedded = _embedded_v4(address)
    if embedded is not None:
        inner = _v4_reason(embedded)
        if inner is not None:
            return f"which stands for {embedded}, {inner}"
    return _v6_reason(address)


class NetworkGuard:
    """Resolves a partner's host name and decides whether Dropyard may connect to it."""

    def __init__(
        self,
        allow: Sequence[Network] = (),
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self._allow = tuple(allow)
        self._resolver = resolver

    def _allowed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, IPv6Address):
            inner = address.ipv4_mapped or _embedded_v4(address)
            if inner is not None:
                candidates.append(inner)
        return any(c in net for c in candidates for net in self._allow if c.version == net.version)

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address `host` resolves to (for TCP), in the resolver's order."""
        name = host.strip()
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]  # "[::1]" as written in URIs
        if not name:
            raise RemoteRefused("no host name was given", stage="reach")
        if not 0 < port < 65536:
            raise RemoteRefused(f"port {port} is not a valid TCP port", stage="reach")
        try:
            answers = self._resolver(name, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            answers = []
        found: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in answers:
            try:
                address = _parse(str(sockaddr[0]))
            except ValueError:
                continue
            if address not in found:
                found.append(address)
        if not found:
            raise RemoteError(f"host '{_shown(host)}' could not be resolved", stage="reach")
        return found

    def check(self, host: str, port: int) -> str:
        """The one address to connect to; RemoteRefused when any address `host` resolves
        to is not public and not in an allowed network."""
        found = self.resolve(host, port)
        for address in found:
            reason = refusal_reason(address)
            if reason is not None and not self._allowed(address):
                raise RemoteRefused(
                    f"host '{_shown(host)}' resolves to {address}, {reason}; {_HOW_TO_ALLOW}",
                    stage="reach",
                )
        chosen = found[0]
        if isinstance(chosen, IPv6Address) and chosen.ipv4_mapped is not None:
            return str(chosen.ipv4_mapped)  # the same host; an IPv4 socket reaches it anywhere
        return str(chosen)
