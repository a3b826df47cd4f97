"""The mailbox side of an email pull (stdlib imaplib): messages in, flags out.

A `Mailbox` is one logged-in session with one selected mailbox on a partner's IMAP server,
reached at the address the network guard checked. Messages are not files, so this is not
a `RemoteFolder`; it shares its Endpoint, Limits and error family. Trust works as for FTPS:
no CA check, the certificate's SHA-256 is compared with the pin (when one is set) right
after the handshake, before the greeting is read, so a server presenting another
certificate never sees the login. `plain=True` means IMAP without TLS (port 143 usually).

What was taken is marked on the server: `$DropyardTaken` (and \\Seen) for a message whose
attachments were taken, `$DropyardRefused` for one the pull would not take, so neither is
looked at again. Bodies are read with BODY.PEEK[], which leaves \\Seen alone.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import email
import email.policy
import imaplib
import io
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from dropyard.errors import DropyardError
from dropyard.remote.base import Endpoint, Limits, RemoteError, RemoteRefused, Stage
from dropyard.remote.wire import (
    check_pin,
    pinning_context,
    server_text,
    socket_failure,
    where,
)

log = logging.getLogger(__name__)

TAKEN = "$DropyardTaken"
REFUSED = "$DropyardRefused"
_BATCH = 200  # UIDs per FETCH of sizes and dates
_CHUNK = 64 * 1024
_SLACK = 64 * 1024  # a literal may exceed RFC822.SIZE a little (line endings), not more
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
_INTERNALDATE = re.compile(
    r"(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})"
)


@dataclass(frozen=True)
class MailMessage:
    uid: int
    size: int  # RFC822.SIZE
    internal_date: int  # when the server received it, seconds since the epoch; 0 if unknown


class _Connection(imaplib.IMAP4):
    """imaplib connected to the checked address (the host name only for SNI), the pin
    checked before the greeting, every read and write bounded by the session's Limits."""

    def __init__(self, endpoint: Endpoint, limits: Limits) -> None:
        self.endpoint = endpoint
        self.limits = limits
        self.presented = ""
        self.max_literal = limits.max_file_bytes + _SLACK
        self.greeted = False  # until then, the connect timeout bounds every wait
        self.broken = False  # a response was cut off halfway: nothing more can be read
        super().__init__(endpoint.host, endpoint.port, timeout=_connect_timeout(limits))
        self.greeted = True

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        endpoint = self.endpoint
        sock = socket.create_connection((endpoint.address, endpoint.port), timeout)
        if self.endpoint.plain:
            return sock
        try:
            tls = pinning_context().wrap_socket(sock, server_hostname=endpoint.host)
        except BaseException:
            sock.close()
            raise
        try:
            self.presented = check_pin(endpoint, tls.getpeercert(binary_form=True))
        except BaseException:
            tls.close()  # the wrapped socket owns the connection now
            raise
        return tls

    def arm(self) -> None:
        if self.greeted:
            self.sock.settimeout(_idle(self.limits, self.endpoint))
        else:
            self.sock.settimeout(_connect_timeout(self.limits))

    def send(self, data: Any) -> None:
        self.arm()
        super().send(data)

    def readline(self) -> bytes:
        self.arm()
        line: bytes = super().readline()
        return line

    def read(self, size: int) -> bytes:
        """A literal, read a chunk at a time so the deadline holds within it."""
        if size > self.max_literal:
            self.broken = True
            raise RemoteRefused(
                f"the server sent {size} bytes at once, more than the limit of "
                f"{self.limits.max_file_bytes} bytes",
                stage="transfer",
            )
        parts: list[bytes] = []
        missing = size
        while missing > 0:
            self.arm()
            chunk = cast(io.BufferedReader, self.file).read1(min(missing, _CHUNK))
            if not chunk:
                raise self.abort("the server closed the connection")
            parts.append(chunk)
            missing -= len(chunk)
        return b"".join(parts)


class Mailbox:
    """One logged-in session with one selected mailbox. Use as a context manager; every
    call honours the Limits and raises only RemoteError / RemoteRefused."""

    def __init__(self, endpoint: Endpoint, limits: Limits) -> None:
        self._endpoint = endpoint
        self._limits = limits
        self._where = where(endpoint)
        self._imap: _Connection | None = None
        self._uidvalidity = 0
        self._uidplus = False
        self._broke = False

    def open(self) -> None:
        endpoint = self._endpoint
        with self._mapped("reach"):
            self._imap = _Connection(endpoint, self._limits)
        with self._mapped("login"):
            self._login()
            self._uidplus = "UIDPLUS" in self._capabilities()
        with self._mapped("folder"):
            try:
                answer, data = self._conn().select(_quoted(_mutf7(endpoint.folder)))
            except imaplib.IMAP4.readonly:
                raise RemoteRefused(
                    f"the mailbox '{endpoint.folder}' is read-only for this login", stage="folder"
                ) from None
            if answer != "OK":
                raise RemoteRefused(
                    f"the mailbox '{endpoint.folder}' cannot be opened: {_text(data)}",
                    stage="folder",
                )
            self._uidvalidity = self._read_uidvalidity()

    # -- what the pull uses

    @property
    def presented(self) -> str:
        """The certificate's SHA-256 fingerprint ("" without TLS)."""
        return self._imap.presented if self._imap is not None else ""

    @property
    def uidvalidity(self) -> int:
        """UIDs are only meaningful together with this number (RFC 3501 2.3.1.1)."""
        return self._uidvalidity

    def messages(self) -> Iterator[MailMessage]:
        """Messages neither taken, refused nor deleted, oldest first, fetched in batches."""
        with self._mapped("transfer"):
            uids = self._search()
        if len(uids) > self._limits.max_listing:
            raise RemoteRefused(
                f"the mailbox holds more than {self._limits.max_listing} messages to take; "
                "move some away",
                stage="transfer",
            )
        for start in range(0, len(uids), _BATCH):
            batch = uids[start : start + _BATCH]
            with self._mapped("transfer"):
                found = self._describe(batch)
            for uid in batch:
                if uid in found:  # others were expunged in between
                    yield found[uid]

    def fetch(self, uid: int) -> bytes:
        """The whole message, without setting \\Seen; RemoteRefused past max_file_bytes."""
        limit = self._limits.max_file_bytes
        with self._mapped("transfer"):
            message = self._describe([uid]).get(uid)
            if message is None:
                raise RemoteRefused(f"message {uid} is no longer in the mailbox", stage="transfer")
            if message.size > limit:
                raise RemoteRefused(
                    f"message {uid} is {message.size} bytes, more than the limit of {limit} bytes",
                    stage="transfer",
                )
            answer, data = self._conn().uid("FETCH", str(uid), "(BODY.PEEK[])")
            self._check(answer, data, f"the server refused to send message {uid}")
            for item in data:
                if isinstance(item, tuple) and b"BODY[]" in item[0]:
                    body: bytes = item[1]
                    return body
        raise RemoteRefused(f"message {uid} is no longer in the mailbox", stage="transfer")

    def mark_taken(self, uid: int) -> None:
        self._flag(uid, f"({TAKEN} \\Seen)")

    def mark_refused(self, uid: int) -> None:
        self._flag(uid, f"({REFUSED})")

    def delete(self, uid: int) -> None:
        self._flag(uid, "(\\Deleted)")
        with self._mapped("transfer"):
            if self._uidplus:
                answer, data = self._conn().uid("EXPUNGE", str(uid))
            else:  # also removes other messages marked \Deleted, the only way without UIDPLUS
                answer, data = self._conn().expunge()
            self._check(answer, data, f"the server refused to delete message {uid}")

    def close(self) -> None:
        imap, self._imap = self._imap, None
        if imap is None:
            return
        with contextlib.suppress(Exception):
            imap.sock.settimeout(min(2.0, self._limits.idle_timeout))
            imap.logout()
        with contextlib.suppress(Exception):
            imap.shutdown()

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- IMAP

    def _conn(self) -> _Connection:
        if self._imap is None:
            state = "broke off earlier; open a new one" if self._broke else "is closed"
            raise RemoteError(f"{self._where}: the session {state}", stage="transfer")
        return self._imap

    def _login(self) -> None:
        user, password = self._endpoint.username, self._endpoint.password or ""
        try:
            if user.isascii() and password.isascii():
                self._conn().login(_quoted(user), password)
            else:  # LOGIN is ASCII only; SASL PLAIN carries UTF-8
                plain = f"\0{user}\0{password}".encode()
                self._conn().authenticate("PLAIN", lambda _: plain)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            raise RemoteRefused(
                f"the server refused the login: {_text(exc.args)}", stage="login"
            ) from None

    def _capabilities(self) -> set[str]:
        answer, data = self._conn().capability()
        words = b" ".join(d for d in data if isinstance(d, bytes)).decode("ascii", "replace")
        return set(words.upper().split()) if answer == "OK" else set()

    def _read_uidvalidity(self) -> int:
        _, data = self._conn().response("UIDVALIDITY")
        if not data or data[0] is None:
            answer, data = self._conn().status(
                _quoted(_mutf7(self._endpoint.folder)), "(UIDVALIDITY)"
            )
            found = re.search(rb"UIDVALIDITY (\d+)", b" ".join(d for d in data if d))
            return int(found.group(1)) if answer == "OK" and found else 0
        return int(data[0])

    def _search(self) -> list[int]:
        answer, data = self._conn().uid(
            "SEARCH", "UNDELETED", "UNKEYWORD", TAKEN, "UNKEYWORD", REFUSED
        )
        self._check(answer, data, "the server refused to search the mailbox")
        words = b" ".join(d for d in data if isinstance(d, bytes)).split()
        return sorted(int(w) for w in words if w.isdigit())

    def _describe(self, uids: list[int]) -> dict[int, MailMessage]:
        answer, data = self._conn().uid(
            "FETCH", ",".join(map(str, uids)), "(RFC822.SIZE INTERNALDATE)"
        )
        self._check(answer, data, "the server refused to describe messages")
        found: dict[int, MailMessage] = {}
        for item in data:
            text = item[0] if isinstance(item, tuple) else item
            if not isinstance(text, bytes):
                continue
            uid = re.search(rb"UID (\d+)", text)
            size = re.search(rb"RFC822\.SIZE (\d+)", text)
            date = re.search(rb'INTERNALDATE "([^"]+)"', text)
            if uid and size:  # other untagged FETCHes (flag changes) carry neither
                found[int(uid.group(1))] = MailMessage(
                    uid=int(uid.group(1)),
                    size=int(size.group(1)),
                    internal_date=parse_internaldate(date.group(1).decode() if date else ""),
                )
        return found

    def _flag(self, uid: int, flags: str) -> None:
        with self._mapped("transfer"):
            answer, data = self._conn().uid("STORE", str(uid), "+FLAGS.SILENT", flags)
            self._check(answer, data, f"the server refused to flag message {uid}")

    def _check(self, answer: str, data: list[Any], refusal: str) -> None:
        if answer != "OK":
            raise RemoteRefused(f"{refusal}: {_text(data)}", stage="transfer")

    # -- errors

    @contextlib.contextmanager
    def _mapped(self, stage: Stage) -> Iterator[None]:
        try:
            yield
        except DropyardError:
            if self._imap is not None and self._imap.broken:
                self._drop()
            raise
        except Exception as exc:
            self._drop()  # after a timeout or a lost line the stream cannot be trusted
            raise self._failure(exc, stage) from None

    def _drop(self) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            self._broke = True
            with contextlib.suppress(Exception):
                imap.shutdown()

    def _failure(self, exc: BaseException, stage: Stage) -> DropyardError:
        if isinstance(exc, ssl.SSLError):
            return RemoteError(
                f"{self._where}: TLS failed ({server_text(exc.reason or exc)})",
                stage="trust" if stage == "reach" else stage,
            )
        failed = socket_failure(exc, self._where, self._limits, stage)
        if failed is not None:
            return failed
        if isinstance(exc, imaplib.IMAP4.error | EOFError):  # abort included
            return RemoteError(f"{self._where}: {_text(exc.args)}", stage=stage)
        log.exception("unexpected error from the IMAP client for %s", self._where)
        return RemoteError(f"{self._where}: the IMAP session failed", stage=stage)


def open_mailbox(endpoint: Endpoint, limits: Limits) -> Mailbox:
    """Connect to `endpoint.address`, check the certificate pin (unless plain), log in and
    select `endpoint.folder` (a mailbox name such as "INBOX")."""
    mailbox = Mailbox(endpoint, limits)
    try:
        mailbox.open()
    except BaseException:
        mailbox.close()
        raise
    return mailbox


def attachments(raw: bytes) -> list[tuple[str, bytes]]:
    """Every part that carries a file name (RFC 2231 and encoded words decoded), with its
    decoded content, in the order they appear. Names are as sent: the caller checks them."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    found: list[tuple[str, bytes]] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if not name:
            continue
        payload = part.get_payload(decode=True)
        found.append((str(name), payload if isinstance(payload, bytes) else b""))
    return found


def parse_internaldate(value: str) -> int:
    """IMAP's `17-Jul-1996 02:44:25 -0700` in seconds since the epoch; 0 if it is not."""
    found = _INTERNALDATE.fullmatch(value.strip())
    if not found or found.group(2).title() not in _MONTHS:
        return 0
    day, month, year, hour, minute, second, sign, zone_h, zone_m = found.groups()
    local = calendar.timegm(
        (int(year), _MONTHS[month.title()], int(day), int(hour), int(minute), int(second))
    )
    offset = (int(zone_h) * 3600 + int(zone_m) * 60) * (1 if sign == "+" else -1)
    return local - offset


# -- helpers -------------------------------------------------------------------------------


def _connect_timeout(limits: Limits) -> float:
    remaining = limits.remaining()
    if remaining <= 0:
        raise RemoteError("the session ran past its time limit and was cut", stage="reach")
    return min(limits.connect_timeout, remaining)


def _idle(limits: Limits, endpoint: Endpoint) -> float:
    remaining = limits.remaining()
    if remaining <= 0:
        raise RemoteError(
            f"{where(endpoint)}: the session ran past its time limit and was cut",
            stage="transfer",
        )
    return min(limits.idle_timeout, remaining)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mutf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + encoded.replace(b"/", b",").decode("ascii") + "-")
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def _text(data: Any) -> str:
    """A server's words from imaplib's (typ, data) or an error's args, safe to show."""
    if isinstance(data, list | tuple):
        data = b" ".join(
            d if isinstance(d, bytes) else str(d).encode() for d in data if d is not None
        )
    return server_text(data) or "no reason given"
