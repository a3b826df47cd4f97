"""Trust in a partner's server, in words: which detail pins it, how the fingerprint a live
test saw compares with the one entered, and what a connection says while its server is
not (or no longer) trusted.

Pure: the live test is `RemoteService.probe`/`test`, called by the edges around the
wizard; what is here only reads its answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from dropyard.errors import Conflict

# A live test's checks, in the order they happen: a failed one explains the rest.
CHECKS = (
    "reachable",
    "trusted",
    "login",
    "folder readable",
    "folder writable",
    "pattern matches",
)


def pin_detail(method: str, methodology: str, details: Mapping[str, Any]) -> str | None:
    """The detail that pins the partner's server: its SSH host key (SFTP) or TLS
    certificate (FTPS, IMAPS); None where there is nothing to pin (hosted, email push and
    deliver, plain FTP, plain IMAP)."""
    if methodology not in ("pull", "deliver"):
        return None
    if method == "sftp":
        return "host_key_fingerprint"
    if method == "ftp" and not details.get("plain_ftp"):
        return "certificate_fingerprint"
    if method == "email" and methodology == "pull" and not details.get("plain_imap"):
        return "certificate_fingerprint"
    return None


def probed(method: str | None, methodology: str | None) -> bool:
    """Whether a connection talks to a partner's server that a live test can reach:
    pull (SFTP, FTP(S), IMAP) and deliver over SFTP or FTP(S)."""
    if methodology == "pull":
        return method is not None
    return methodology == "deliver" and method in ("sftp", "ftp")


def key_label(method: str) -> str:
    return "Host key" if method == "sftp" else "Certificate"


def normalized(fingerprint: str) -> str:
    """A fingerprint in one spelling: SHA256:<base64> without padding, or colon-free
    upper-case hex for a certificate."""
    value = fingerprint.strip()
    prefix, colon, body = value.partition(":")
    if colon and prefix.upper() == "SHA256":
        return "SHA256:" + body.rstrip("=")
    return value.replace(":", "").upper()


def same(one: str | None, other: str | None) -> bool:
    return one is not None and other is not None and normalized(one) == normalized(other)


def typed_pin(method: str, methodology: str, details: Mapping[str, Any]) -> str | None:
    key = pin_detail(method, methodology, details)
    value = details.get(key) if key else None
    return value if isinstance(value, str) and value else None


def pin_to_send(
    method: str, methodology: str, details: Mapping[str, Any], presented: str | None
) -> str | None:
    """What a review hands back to create as `pin`: the fingerprint it showed, when
    the details pin none themselves (a typed one is the user's choice and stays)."""
    if pin_detail(method, methodology, details) is None or typed_pin(method, methodology, details):
        return None
    return presented or None


def fingerprint_line(
    method: str, methodology: str, details: Mapping[str, Any], presented: str | None
) -> tuple[str, str] | None:
    """The review's line about the server's key: what it presented, and whether that
    will be pinned, matches the entered one, or differs from it."""
    if pin_detail(method, methodology, details) is None:
        return None
    label = key_label(method)
    typed = typed_pin(method, methodology, details)
    if presented is None:
        if typed:
            return label, f"{typed} (entered; not compared: the server could not be reached)"
        return label, (
            "not seen: the server could not be reached. The connection is created "
            "unpinned and moves nothing until you test it and approve its key"
        )
    if typed is None:
        return label, f"{presented} (will be pinned)"
    if same(typed, presented):
        return label, f"{presented} (matches the pinned one)"
    return label, (
        f"{presented}: DIFFERS from the fingerprint you entered ({typed}); transfers "
        "will refuse this server"
    )


def check_unchanged(method: str, shown: str, presented: str | None) -> None:
    """Create pins only what the review showed: Conflict if the server now presents
    another key. A server that cannot be reached now gets the shown pin (transfers
    check it)."""
    if presented is not None and not same(shown, presented):
        what = "host key" if method == "sftp" else "certificate"
        raise Conflict(
            f"the server's {what} changed since the review: it showed {shown}, it now "
            f"presents {presented}. Nothing was created; review the connection again",
            field="pin",
        )


class Trusting(Protocol):
    """What `notice` reads of a connection."""

    @property
    def id(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def methodology(self) -> str: ...
    @property
    def details(self) -> dict[str, Any]: ...
    @property
    def presented_fingerprint(self) -> str | None: ...


def approve_command(connection_id: int, fingerprint: str) -> str:
    return f"dropyard connections approve {connection_id} --fingerprint {fingerprint}"


def notice(connection: Trusting) -> str | None:
    """Why the connection's server is not trusted, and the command that fixes it; None
    when it is (or there is nothing to trust)."""
    method, methodology = connection.method, connection.methodology
    if pin_detail(method, methodology, connection.details) is None:
        return None
    what = key_label(method).lower()
    presented = connection.presented_fingerprint
    if presented:
        return (
            f"the server presented the {what} {presented}, not the pinned one, and "
            "nothing moves until it is trusted. If the partner changed it, approve it: "
            f"{approve_command(connection.id, presented)}"
        )
    if typed_pin(method, methodology, connection.details) is None:
        return f"{what} not pinned yet: run `dropyard connections test {connection.id}` and approve"
    return None
