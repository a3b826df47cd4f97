"""The PROXY protocol (HAProxy's spec, v1 text and v2 binary) for listeners behind a TCP
load balancer: the balancer opens each connection with a header naming the client's
address, and the listener takes the client's address from it instead of the balancer's.

Pure functions (`remaining`, `parse`) say how much of a header is still to come and what
a complete one means; `read_header` (blocking, for pyftpdlib's threads) and
`read_header_async` (asyncio) read exactly the header's bytes from a raw socket, so the
protocol's own first bytes stay in the socket for the server library that comes next.
`ProxiedListener` is an asyncio listener that does the whole admission: peers outside
the trusted networks are hung up on, a header that is late, too long or garbled closes
the connection, and only then is the socket handed on with the client's address.

Written here rather than taken from PyPI: `proxy-protocol` reads from an asyncio
StreamReader, which buffers past the header (asyncssh needs the socket itself) and has no
blocking variant (pyftpdlib); aiosmtpd's parser is internal to aiosmtpd, which uses it
itself for the SMTP listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Literal

from dropyard.errors import Invalid
from dropyard.settings import Settings

log = logging.getLogger(__name__)

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY"
V1_MAX = 107  # the spec's longest v1 line, CRLF included
# v2 allows 64 KiB of TLVs; a balancer sends a few dozen bytes. More is refused.
V2_MAX = 16 + 2048
_PREFIX = 5  # enough to tell v1 ("PROXY") from v2, and shorter than either header

Address = tuple[str, int]


class ProxyHeaderError(Invalid):
    """A connection did not open with a usable PROXY header; it is closed."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed header. `source` is None when the balancer speaks for itself (v2 LOCAL,
    e.g. a health check; v1 UNKNOWN; v2 UNSPEC): the socket's own peer is the client."""

    version: Literal[1, 2]
    source: Address | None
    destination: Address | None

    def client(self, peer: Address) -> Address:
        return self.source if self.source is not None else peer


def remaining(received: bytes) -> int | None:
    """How many more bytes the header needs: an exact count (0 once complete), or None
    while a v1 line is open: read up to and including its LF, at most `V1_MAX` in all.

    Raises ProxyHeaderError as soon as `received` cannot start a valid header.
    """
    size = len(received)
    if size < _PREFIX:
        if not (V1_PREFIX.startswith(received) or V2_SIGNATURE.startswith(received)):
            raise ProxyHeaderError("the connection did not start with a PROXY header")
        return _PREFIX - size
    if received.startswith(V1_PREFIX):
        if received.endswith(b"\n"):
            return 0
        if size >= V1_MAX:
            raise ProxyHeaderError(f"the PROXY v1 line is longer than {V1_MAX} bytes")
        return None
    if not V2_SIGNATURE.startswith(received[: len(V2_SIGNATURE)]):
        raise ProxyHeaderError("the connection did not start with a PROXY header")
    if size < 16:
        return 16 - size
    total = 16 + int.from_bytes(received[14:16], "big")
    if total > V2_MAX:
        raise ProxyHeaderError(f"the PROXY v2 header is longer than {V2_MAX} bytes")
    return total - size


def parse(header: bytes) -> ProxyHeader:
    """A complete header (as `remaining` delimits it), v1 or v2."""
    if header.startswith(V1_PREFIX):
        return _parse_v1(header)
    if header.startswith(V2_SIGNATURE):
        return _parse_v2(header)
    raise ProxyHeaderError("the connection did not start with a PROXY header")


def _parse_v1(line: bytes) -> ProxyHeader:
    if len(line) > V1_MAX or not line.endswith(b"\r\n"):
        raise ProxyHeaderError("the PROXY v1 line does not end with CRLF within 107 bytes")
    parts = line[:-2].split(b" ")
    if parts[0] != V1_PREFIX or len(parts) < 2:
        raise ProxyHeaderError("the PROXY v1 line is malformed")
    if parts[1] == b"UNKNOWN":
        # The spec: ignore the rest of the line and use the connection's own endpoints.
        return ProxyHeader(version=1, source=None, destination=None)
    if parts[1] not in (b"TCP4", b"TCP6") or len(parts) != 6:
        raise ProxyHeaderError("the PROXY v1 line is malformed")
    version = 4 if parts[1] == b"TCP4" else 6
    source = _v1_address(parts[2], parts[4], version)
    destination = _v1_address(parts[3], parts[5], version)
    return ProxyHeader(version=1, source=source, destination=destination)


def _v1_address(host: bytes, port: bytes, version: int) -> Address:
    try:
        ip = ip_address(host.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyHeaderError("the PROXY v1 line has a malformed address") from None
    if ip.version != version:
        raise ProxyHeaderError(f"the PROXY v1 line has a non-IPv{version} address")
    if not port.isdigit() or len(port) > 5 or (len(port) > 1 and port.startswith(b"0")):
        raise ProxyHeaderError("the PROXY v1 line has a malformed port")
    number = int(port)
    if number > 65535:
        raise ProxyHeaderError("the PROXY v1 line has a port out of range")
    return str(ip), number


def _parse_v2(header: bytes) -> ProxyHeader:
    if len(header) < 16 or len(header) != 16 + int.from_bytes(header[14:16], "big"):
        raise ProxyHeaderError("the PROXY v2 header is truncated")
    version, command = header[12] >> 4, header[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError("the PROXY v2 header has an unknown version")
    if command == 0x0:  # LOCAL: the balancer's own connection (health checks)
        return ProxyHeader(version=2, source=None, destination=None)
    if command != 0x1:
        raise ProxyHeaderError("the PROXY v2 header has an unknown command")
    family, body = header[13], header[16:]
    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    if family == 0x00:  # PROXY over UNSPEC: the spec lets us use the real endpoints
        return ProxyHeader(version=2, source=None, destination=None)
    # Only TCP over IPv4 (0x11) and IPv6 (0x21): these listeners take no UDP or UNIX
    # streams, and an address there could not be banned. TLVs after it are skipped.
    if family == 0x11 and len(body) >= 12:
        src, dst = IPv4Address(body[0:4]), IPv4Address(body[4:8])
        ports = body[8:12]
    elif family == 0x21 and len(body) >= 36:
        src, dst = IPv6Address(body[0:16]), IPv6Address(body[16:32])
        ports = body[32:36]
    else:
        raise ProxyHeaderError("the PROXY v2 header is not for TCP over IPv4 or IPv6")
    return ProxyHeader(
        version=2,
        source=(_plain(src), int.from_bytes(ports[0:2], "big")),
        destination=(_plain(dst), int.from_bytes(ports[2:4], "big")),
    )


def _plain(ip: IPv4Address | IPv6Address) -> str:
    """IPv4-mapped IPv6 addresses as plain IPv4, so one client has one address."""
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def plain_address(address: str) -> str:
    try:
        return _plain(ip_address(address))
    except ValueError:
        return address


# -- who may send one ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyPolicy:
    """PROXY protocol is on: only peers in `trusted` may connect, and each must send a
    header within `timeout` seconds."""

    trusted: tuple[IPv4Network | IPv6Network, ...]
    timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ProxyPolicy | None:
        """None when `proxy_protocol` is off. Refuses "on" without trusted networks: every
        connection would be refused."""
        if not settings.proxy_protocol:
            return None
        if not settings.proxy_trusted:
            raise Invalid(
                "proxy_protocol is on but proxy_trusted is empty: list the load balancer's "
                'networks (e.g. ["10.0.0.5/32"])',
                field="proxy_trusted",
            )
        networks = tuple(ip_network(item, strict=False) for item in settings.proxy_trusted)
        return cls(trusted=networks, timeout=settings.proxy_timeout_seconds)

    def trusts(self, address: str) -> bool:
        try:
            ip = ip_address(plain_address(address))
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)


# -- reading exactly the header ---------------------------------------------------------


def _v1_take(peeked: bytes) -> int:
    """Of bytes peeked while a v1 line is open: how many belong to the line."""
    end = peeked.find(b"\n")
    return end + 1 if end >= 0 else len(peeked)


def read_header(sock: socket.socket, *, timeout: float) -> ProxyHeader:
    """Blocking: the header at the start of `sock`, within `timeout` seconds. The socket's
    own timeout (non-blocking for pyftpdlib) is restored afterwards."""
    before = sock.gettimeout()
    deadline = time.monotonic() + timeout
    received = b""
    try:
        while (wanted := remaining(received)) != 0:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            if wanted is None:
                peeked = sock.recv(V1_MAX - len(received), socket.MSG_PEEK)
                data = sock.recv(_v1_take(peeked)) if peeked else b""
            else:
                data = sock.recv(wanted)
            if not data:
                raise ProxyHeaderError("the connection closed before its PROXY header ended")
            received += data
    except TimeoutError:
        raise ProxyHeaderError(f"no complete PROXY header within {timeout:g} s") from None
    except OSError as exc:
        raise ProxyHeaderError(f"the connection failed before its PROXY header: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(before)
    return parse(received)


async def read_header_async(sock: socket.socket, *, timeout: float) -> ProxyHeader:
    """The header at the start of the non-blocking `sock`, within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    received = b""
    try:
        async with asyncio.timeout(timeout):
            while (wanted := remaining(received)) != 0:
                if wanted is None:
                    await _readable(loop, sock)
                    try:
                        peeked = sock.recv(V1_MAX - len(received), socket.MSG_PEEK)
                    except BlockingIOError:
                        continue
                    data = sock.recv(_v1_take(peeked)) if peeked else b""
                else:
                    data = await loop.sock_recv(sock, wanted)
                if not data:
                    raise ProxyHeaderError("the connection closed before its PROXY header ended")
                received += data
    except TimeoutError:
        raise ProxyHeaderError(f"no complete PROXY header within {timeout:g} s") from None
    except OSError as exc:
        raise ProxyHeaderError(f"the connection failed before its PROXY header: {exc}") from None
    return parse(received)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def _wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), _wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


# -- an asyncio listener that admits proxied connections --------------------------------

Admitted = Callable[[socket.socket, Address], Awaitable[None]]


class ProxiedListener:
    """Accepts TCP connections for a front-end that needs the raw socket (asyncssh): the
    peer must be trusted and must send a header; then `admitted(sock, client)` owns the
    socket. Same `close()`/`wait_closed()` as an asyncio server."""

    def __init__(self, policy: ProxyPolicy, admitted: Admitted, *, name: str) -> None:
        self._policy = policy
        self._admitted = admitted
        self._name = name
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._accepting = asyncio.create_task(self._accept(sock), name=f"{self._name}-accept")
        return int(sock.getsockname()[1])

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listener)
            except OSError as exc:
                # Out of file descriptors and the like: the next accept may work.
                log.warning("%s listener could not accept: %s", self._name, exc)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._admit(sock, (plain_address(peer[0]), peer[1])))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _admit(self, sock: socket.socket, peer: Address) -> None:
        sock.setblocking(False)
        if not self._policy.trusts(peer[0]):
            # info, not warning: scanners knock all day; a misrouted balancer shows as one.
            log.info(
                "refusing %s connection from %s: not a trusted load balancer", self._name, peer[0]
            )
            sock.close()
            return
        try:
            header = await read_header_async(sock, timeout=self._policy.timeout)
        except ProxyHeaderError as exc:
            log.warning("closing %s connection from %s: %s", self._name, peer[0], exc.message)
            sock.close()
            return
        except asyncio.CancelledError:
            sock.close()
            raise
        client = header.client(peer)
        try:
            await self._admitted(sock, client)
        except Exception:
            # The front-end's own failure (it handles the expected ones): keep serving.
            log.exception("%s connection from %s failed", self._name, client[0])

    def close(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._pending):
            task.cancel()
        if self._sock is not None:
            self._sock.close()

    async def wait_closed(self) -> None:
        tasks = [t for t in (self._accepting, *self._pending) if t is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._accepting = None
        self._sock = None
