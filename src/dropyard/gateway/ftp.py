"""FTP/FTPS front-end (pyftpdlib): authenticates, then maps FTP commands onto the session core.

Explicit TLS (AUTH TLS) is expected for login and data; plain FTP logs in only where the
login reaches a folder whose connection allows it, and then sees only those folders. A
thread per client (pyftpdlib's ThreadedFTPServer) because logins and commits block on the
database. pyftpdlib and pyOpenSSL types stay in this module and `ftp_fs.py` (the files and
the data connections); session errors become FTP replies in the two of them.

An upload is committed in exactly one place, `on_file_received`, and only after its data
connection ended cleanly (a TLS close_notify on a protected channel). The 226 is sent
after the commit, so a client never hears "complete" for a file that was not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from OpenSSL import SSL
from pyftpdlib.exceptions import FilesystemError
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.handlers.ftp.dispatchers import PassiveDTP
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import ThreadedFTPServer

from dropyard.errors import DropyardError, Invalid, Transient
from dropyard.gateway.ftp_fs import DataChannel, SessionFS, reply
from dropyard.gateway.logins import Gateway
from dropyard.gateway.proxy_protocol import (
    ProxyHeaderError,
    ProxyPolicy,
    plain_address,
    read_header,
)
from dropyard.gateway.session import GatewaySession
from dropyard.gateway.tls import ensure_certificate
from dropyard.settings import Settings

log = logging.getLogger(__name__)

BANNER = "Dropyard FTP ready."
# STOU (server-chosen names), REIN (changing user mid-session) and MFMT (setting times)
# have no meaning over the session core; unknown commands get a plain 500.
_DROPPED = frozenset({"STOU", "REIN", "MFMT"})
_DATA_COMMANDS = frozenset({"PASV", "EPSV", "PORT", "EPRT"})
_TRANSFER_COMMANDS = frozenset({"STOR", "APPE", "RETR", "LIST", "NLST", "MLSD"})


@dataclass(frozen=True)
class FtpLimits:
    max_connections: int = 256
    max_connections_per_address: int = 16
    max_login_attempts: int = 3
    login_timeout: float = 30.0
    idle_timeout: float = 300.0
    failed_login_delay: float = 2.0
    passive_ports: range | None = None
    masquerade_address: str | None = None


def parse_port_range(text: str) -> range | None:
    """`"30000-30100"` as a range; empty means any free port."""
    text = text.strip()
    if not text:
        return None
    low, dash, high = text.partition("-")
    try:
        first, last = int(low), int(high if dash else low)
    except ValueError:
        raise Invalid(f"ftp_passive_ports '{text}' is not a range like 30000-30100") from None
    if not 1024 <= first <= last <= 65535:
        raise Invalid(f"ftp_passive_ports '{text}' must lie within 1024-65535, low to high")
    return range(first, last + 1)


def tls_context(cert: Path, key: Path) -> SSL.Context:
    """pyOpenSSL context for FTPS: TLS 1.2 or newer, forward-secret AEAD ciphers only."""
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(
        SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_RENEGOTIATION
    )
    context.set_cipher_list(b"ECDHE+AESGCM:ECDHE+CHACHA20")
    context.use_certificate_chain_file(str(cert))
    context.use_privatekey_file(str(key))
    context.check_privatekey()
    # Lets clients resume the control connection's TLS session on data connections.
    context.set_session_id(b"dropyard-ftps")
    return context


class _SessionAuthorizer:
    """What pyftpdlib still asks an authorizer. Logins go through `Gateway` (see `ftp_PASS`)
    and every permission is the session core's decision, so nothing is refused here."""

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        return True

    def get_perms(self, username: str) -> str:
        return "elradfw"

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        return None

    def terminate_impersonation(self, username: str) -> None:
        return None


class _PassiveData(PassiveDTP):  # type: ignore[misc]
    """The PASV/EPSV data listener. Behind a load balancer a data connection from the
    balancer must carry a PROXY header naming the control connection's client; one that
    comes straight from the client (nodes announcing their own public address) must come
    from that client's address. Either way the library's check compares the client's real
    address, so nobody else can take over a transfer."""

    def handle_accepted(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        control = self.cmd_channel
        proxy: ProxyPolicy | None = getattr(control, "proxy", None)
        if proxy is not None:
            peer = (plain_address(addr[0]), addr[1])
            if proxy.trusts(peer[0]):
                # Blocks this client's thread only, for at most the header timeout.
                try:
                    addr = read_header(sock, timeout=proxy.timeout).client(peer)
                except ProxyHeaderError as exc:
                    log.warning("closing FTP data connection from %s: %s", peer[0], exc.message)
                    with contextlib.suppress(OSError):
                        sock.close()
                    control.respond("425 Can't open data connection.")
                    return
            else:
                addr = peer
        super().handle_accepted(sock, addr)


class _ControlChannel(TLS_FTPHandler):  # type: ignore[misc]
    """One client's control connection. Configured per listener by `FtpFrontEnd`."""

    front: FtpFrontEnd
    limits: FtpLimits
    # Set when the listener is behind a load balancer (PROXY protocol).
    proxy: ProxyPolicy | None = None
    username: str
    remote_ip: str
    remote_port: int
    timeout: float
    _idler: Any

    authorizer = _SessionAuthorizer()
    abstracted_fs = SessionFS
    dtp_handler = DataChannel
    passive_dtp = _PassiveData
    proto_cmds: ClassVar[dict[str, Any]] = {
        k: v for k, v in TLS_FTPHandler.proto_cmds.items() if k not in _DROPPED
    }
    banner = BANNER
    permit_foreign_addresses = False
    permit_privileged_ports = False
    use_sendfile = False
    use_gmt_times = True

    def __init__(self, conn: socket.socket, server: Any, ioloop: Any = None) -> None:
        self.session: GatewaySession | None = None
        self._vfs: SessionFS | None = None
        self._released = False
        self._opened_at = time.monotonic()
        self._awaiting_header = self.proxy is not None
        super().__init__(conn, server, ioloop)
        # The RFC 3659 facts that mean something here: no unix owner or mode, no inodes.
        self._current_facts = ["type", "perm", "size", "modify"]
        self._available_facts = list(self._current_facts)
        if not self._closed:
            self.front.track(self)

    @property
    def address(self) -> str:
        ip = str(self.remote_ip)
        return ip[7:] if ip.startswith("::ffff:") else ip

    @property
    def busy(self) -> bool:
        return self._vfs is not None and self._vfs.uploading

    # -- connection and login ---------------------------------------------------------

    def handle(self) -> None:
        if not self._awaiting_header:
            super().handle()
        # else the greeting waits for the PROXY header, read in this client's thread.

    def add_channel(self, map: Any = None, events: Any = None) -> None:
        super().add_channel(map, events)
        # The library creates the handler on the accepting thread's loop, then moves it to
        # a thread of its own: there, and only there, waiting for the header blocks no one.
        if self._awaiting_header and self.ioloop is not self.server.ioloop:
            self._awaiting_header = False
            self._admit_proxied()

    def _admit_proxied(self) -> None:
        """Become the client the PROXY header names, then greet it (or turn it away)."""
        proxy = self.proxy
        if proxy is None:
            return
        peer = (self.address, int(self.remote_port))
        try:
            client, port = read_header(self.socket, timeout=proxy.timeout).client(peer)
        except ProxyHeaderError as exc:
            log.warning("closing FTP connection from %s: %s", peer[0], exc.message)
            self.close()
            return
        ip_map: list[str] = self.server.ip_map
        with contextlib.suppress(ValueError):
            ip_map.remove(self.remote_ip)
        ip_map.append(client)
        self.remote_ip, self.remote_port = client, port
        if self.front.gateway.defender.is_banned(client):
            log.info("refusing FTP connection from %s (banned)", client)
            self.respond("421 Too many failed logins from your address; try again later.")
            self.close_when_done()
        elif ip_map.count(client) > self.limits.max_connections_per_address:
            self.handle_max_cons_per_ip()
        else:
            super().handle()

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        if any(c in line for c in "\x00\r\n"):
            self.respond("501 NUL, CR and LF are not allowed in commands.")
            return
        if (
            not self.authenticated
            and time.monotonic() - self._opened_at > self.limits.login_timeout
        ):
            self.respond("421 Login timed out.")
            self.close_when_done()
            return
        super().pre_process_command(line, cmd, arg)

    def process_command(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        if cmd in _DATA_COMMANDS and self._ssl_established and not self._prot:
            self.respond("521 Protect the data connection first: send PBSZ 0 and PROT P.")
            return
        channel = self.data_channel
        if (
            cmd in _TRANSFER_COMMANDS
            and channel is not None
            and (channel.receive or channel.file_obj is not None or channel.transfer_in_progress())
        ):
            self.respond("450 A transfer is already running on this connection.")
            return
        super().process_command(cmd, *args, **kwargs)

    def ftp_USER(self, line: str) -> None:  # noqa: N802
        if self.authenticated:
            self.respond("503 Already logged in; QUIT and connect again to change user.")
            return
        super().ftp_USER(line)

    def ftp_PASS(self, line: str) -> None:  # noqa: N802
        if self.authenticated:
            self.respond("503 User already authenticated.")
            return
        if not self.username:
            self.respond("503 Login with USER first.")
            return
        secure = bool(self._ssl_established)
        try:
            session = self.front.gateway.login_password(
                self.username, line, protocol="ftp", address=self.address, secure=secure
            )
        except Transient as exc:
            self.respond(f"421 {exc.message}.")
            self.close_when_done()
            return
        if session is None:
            self.handle_auth_failed("", "")
            return
        if not secure and not session.folders():
            session.close()
            self.username = ""
            self.respond("530 This login needs TLS: connect with FTPS (AUTH TLS) and log in again.")
            return
        self.session = session
        self.handle_auth_success("/", "", "Logged in.")
        self._vfs = self.fs
        # From now on the idle timeout applies instead of the login timeout.
        self.timeout = self.limits.idle_timeout
        if self._idler is not None and not self._idler.cancelled:
            self._idler.cancel()
        self._idler = self.ioloop.call_later(
            self.timeout, self.handle_timeout, _errback=self.handle_error
        )

    # -- commands the library would send to os.* --------------------------------------

    def ftp_CWD(self, path: str) -> str | None:  # noqa: N802
        try:
            self.fs.chdir(path)
        except FilesystemError as exc:
            self.respond(f"550 {exc}.")
            return None
        self.respond(f'250 "{self.fs.cwd}" is the current directory.')
        return path

    def ftp_STOR(self, file: str, mode: str = "w") -> str | None:  # noqa: N802
        started: str | None = super().ftp_STOR(file, mode)
        if started is None and self._vfs is not None:
            self._vfs.abort_uploads()  # opened, then refused (a bad REST position)
        return started

    # -- the end of a transfer --------------------------------------------------------

    def on_file_received(self, file: str) -> None:
        vfs = self._vfs
        upload = vfs.take_upload(file) if vfs is not None else None
        if vfs is None or upload is None:
            self.respond("451 The upload was not kept; send it again.")
            return
        try:
            view = vfs.session.finish(upload)
        except DropyardError as exc:
            self.respond(reply(exc))
        except Exception:
            log.exception("committing an FTP upload from %s failed", self.address)
            vfs.session.abort(upload)
            self.respond("451 The upload could not be stored; nothing was kept. Try again later.")
        else:
            if view is None:
                self.respond("226 Transfer complete; rename the file to finish the upload.")
            else:
                self.respond(f"226 Transfer complete; trace id {view.trace_id}.")

    def on_incomplete_file_received(self, file: str) -> None:
        vfs = self._vfs
        upload = vfs.take_upload(file) if vfs is not None else None
        if vfs is not None and upload is not None:
            vfs.session.abort(upload)

    def on_file_sent(self, file: str) -> None:
        vfs = self._vfs
        download = vfs.take_download(file) if vfs is not None else None
        if vfs is not None and download is not None:
            try:
                vfs.session.finished_read(download.target, size=download.sent)
            except Exception:
                log.exception("recording an FTP download for %s failed", self.address)

    def on_incomplete_file_sent(self, file: str) -> None:
        if self._vfs is not None:
            self._vfs.take_download(file)

    # -- going away -------------------------------------------------------------------

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()

    def handle_error(self) -> None:
        try:
            super().handle_error()
        finally:
            self._release()

    def on_disconnect(self) -> None:
        self._release()

    def _release(self) -> None:
        """Whatever ends the connection: uploads still open are aborted, the session closed."""
        if self._released:
            return
        self._released = True
        self.front.untrack(self)
        vfs, self._vfs, self.session = self._vfs, None, None
        if vfs is not None:
            try:
                vfs.release()
            except Exception:
                log.exception("releasing the FTP session of %s failed", self.address)


class _Server(ThreadedFTPServer):  # type: ignore[misc]
    poll_timeout = 0.25  # how quickly client threads notice a stop

    def __init__(
        self, address: tuple[str, int], handler: type[_ControlChannel], *, limits: FtpLimits
    ) -> None:
        # Per instance: the library keeps these on the class, shared by every server.
        self._exit = threading.Event()
        self._lock = threading.Lock()
        super().__init__(address, handler, ioloop=IOLoop(), backlog=128)
        self.max_cons = limits.max_connections
        # Behind a load balancer every connection comes from the balancer: the cap per
        # client address applies once the PROXY header has named the client.
        self.max_cons_per_ip = 0 if handler.proxy else limits.max_connections_per_address

    def handle_accepted(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        address = addr[0][7:] if addr[0].startswith("::ffff:") else addr[0]
        proxy: ProxyPolicy | None = self.handler.proxy
        if proxy is not None:
            if not proxy.trusts(address):
                log.info("refusing FTP connection from %s: not a trusted load balancer", address)
                sock.close()
                return
            super().handle_accepted(sock, addr)
            return
        if self.handler.front.gateway.defender.is_banned(address):
            log.info("refusing FTP connection from %s (banned)", address)
            with contextlib.suppress(OSError):
                sock.send(b"421 Too many failed logins from your address; try again later.\r\n")
            sock.close()
            return
        super().handle_accepted(sock, addr)

    def _start_task(self, *args: Any, **kwargs: Any) -> threading.Thread:
        return threading.Thread(*args, daemon=True, **kwargs)


class FtpFrontEnd:
    """The FTP(S) listener: accepts in its own thread, serves each client in another."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        certificate: tuple[Path, Path],
        limits: FtpLimits | None = None,
        proxy: ProxyPolicy | None = None,
    ) -> None:
        self.gateway = gateway
        self.limits = limits or FtpLimits()
        self._proxy = proxy
        self._certificate = certificate
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._clients: set[_ControlChannel] = set()

    @classmethod
    def from_settings(cls, gateway: Gateway, settings: Settings) -> FtpFrontEnd:
        if settings.tls_cert_file is not None:
            cert, key = settings.tls_cert_file, settings.tls_key_file or settings.tls_cert_file
        else:
            cert, key = ensure_certificate(settings.keys_dir, hostname=settings.public_host)
        limits = FtpLimits(
            max_connections=settings.ftp_max_connections,
            max_connections_per_address=settings.ftp_max_connections_per_address,
            passive_ports=parse_port_range(settings.ftp_passive_ports),
            masquerade_address=settings.ftp_masquerade_address,
        )
        return cls(
            gateway,
            certificate=(cert, key),
            limits=limits,
            proxy=ProxyPolicy.from_settings(settings),
        )

    def track(self, client: _ControlChannel) -> None:
        with self._lock:
            self._clients.add(client)

    def untrack(self, client: _ControlChannel) -> None:
        with self._lock:
            self._clients.discard(client)

    @property
    def busy(self) -> bool:
        """An upload is in flight on some connection."""
        with self._lock:
            return any(client.busy for client in self._clients)

    async def start(self, host: str, port: int) -> int:
        return await asyncio.to_thread(self._start, host, port)

    def _start(self, host: str, port: int) -> int:
        # pyftpdlib logs every command at INFO; its warnings and errors still come through.
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        limits = self.limits
        data = type("DropyardFtpData", (DataChannel,), {"timeout": limits.idle_timeout})
        handler = type(
            "DropyardFtpControl",
            (_ControlChannel,),
            {
                "front": self,
                "limits": limits,
                "ssl_context": tls_context(*self._certificate),
                "dtp_handler": data,
                "timeout": limits.login_timeout,
                "max_login_attempts": limits.max_login_attempts,
                "auth_failed_timeout": limits.failed_login_delay,
                "passive_ports": limits.passive_ports,
                "masquerade_address": limits.masquerade_address,
                "proxy": self._proxy,
            },
        )
        self._server = _Server((host, port), handler, limits=limits)
        self._thread = threading.Thread(target=self._accept, name="ftp-accept", daemon=True)
        self._thread.start()
        return int(self._server.address[1])

    def _accept(self) -> None:
        server = self._server
        while server is not None and not self._stopping.is_set():
            try:
                if server.ioloop.socket_map:
                    server.ioloop.loop(timeout=0.2, blocking=False)
                else:
                    time.sleep(0.2)
            except Exception:
                log.exception("FTP accept loop")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop accepting; give uploads in flight `grace` seconds, then cut them off.

        A connection cut off with an upload still open aborts it: nothing half-committed.
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        server.close()  # the accept loop has ended: no other thread touches the listener
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and self.busy:
            await asyncio.sleep(0.1)
        await asyncio.to_thread(server.close_all)
