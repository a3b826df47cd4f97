"""A connection test's verdicts, in the order the checks happen.

Each check is a readable verdict; once one fails, the later ones are reported as not
checked (saying which one failed), so "reachable: yes, login: no" reads as it happened.
The service does the connecting; this module only words and orders what it found.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from dropyard.connections import trust
from dropyard.errors import DropyardError
from dropyard.remote.base import ProbeReport, RemoteFolder, Verdict
from dropyard.remote.pull import Mailbox
from dropyard.remote.selection import takes

log = logging.getLogger(__name__)

# Pins no server can present: the client stops at the trust check, before any login.
UNMATCHABLE_SSH = "SHA256:" + "A" * 43
UNMATCHABLE_TLS = ":".join(["00"] * 32)
_SAMPLE = 5
_SAMPLE_MESSAGES = 3
_SAMPLE_MESSAGE_BYTES = 5 * 1024 * 1024

AttachmentReader = Callable[[bytes], list[tuple[str, bytes]]]


def _checks_of(method: str, methodology: str, details: Mapping[str, Any]) -> tuple[str, ...]:
    if method == "email" and methodology == "deliver":
        return ("mail relay",)
    if method == "email":
        return ("reachable", "trusted", "login", "folder readable", "pattern matches")
    found = ["reachable", "trusted", "login", "folder readable"]
    if methodology == "deliver" or details.get("result_folder"):
        found.append("folder writable")
    if methodology == "pull":
        found.append("pattern matches")
    return tuple(found)


class Checks:
    """The verdicts of one test, filled in as it goes."""

    def __init__(self, *, method: str, methodology: str, details: Mapping[str, Any]) -> None:
        self._order = _checks_of(method, methodology, details)
        self._plain = "plain IMAP" if method == "email" else "plain FTP"
        self._methodology = methodology
        self._details = details
        self._pattern = str(details.get("file_pattern") or "*")
        self._verdicts: dict[str, Verdict] = {}
        self._sample: tuple[str, ...] = ()

    def add(self, check: str, ok: bool, detail: str) -> bool:
        self._verdicts[check] = Verdict(check, ok, detail)
        return ok

    def report(self, fingerprint: str | None) -> ProbeReport:
        verdicts: list[Verdict] = []
        failed: str | None = None
        for check in self._order:
            found = self._verdicts.get(check)
            if found is None:
                why = f"{failed} failed" if failed else "the test stopped before it"
                found = Verdict(check, False, f"not checked: {why}")
            elif not found.ok and failed is None:
                failed = check
            verdicts.append(found)
        return ProbeReport(tuple(verdicts), fingerprint, self._sample)

    # -- stages -------------------------------------------------------------------------

    def relay(self, relay: str | None) -> ProbeReport:
        if relay:
            self.add("mail relay", True, f"mail goes out through the relay {relay}")
        else:
            self.add(
                "mail relay",
                False,
                "no mail relay is configured (DROPYARD_SMTP_RELAY_HOST): nothing would be sent",
            )
        return self.report(None)

    def unreachable(self, message: str, *, stage: str = "reach") -> ProbeReport:
        if stage == "trust":
            self.add("reachable", True, "the server answered")
            self.add("trusted", False, message)
        else:
            self.add("reachable", False, message)
        return self.report(None)

    def reached(self, detail: str) -> None:
        self.add("reachable", True, detail)

    def trusted(
        self,
        *,
        what: str,
        presented: str | None,
        pinned: str | None,
        creating: bool,
    ) -> bool:
        """The trust verdict; whether the test goes on to log in."""
        if presented is None:
            return self.add(
                "trusted",
                True,
                f"{self._plain}: no certificate to check (allowed: the connection says so)",
            )
        if pinned:
            if trust.same(pinned, presented):
                return self.add("trusted", True, f"the {what} {presented} is the pinned one")
            return self.add(
                "trusted",
                False,
                f"the server presents the {what} {presented}, but {pinned} is pinned: it "
                "may not be the partner's server, so no login was sent. If the partner "
                "changed it, approve the new one",
            )
        if creating:
            self.add(
                "trusted",
                True,
                f"the server presents the {what} {presented}; it is pinned when the "
                "connection is created",
            )
        else:
            self.add(
                "trusted",
                False,
                f"the {what} is not pinned yet: the server presents {presented}; approve "
                "it before anything moves",
            )
        return True

    def no_login(self, pending: bool, presented: str | None = None) -> ProbeReport:
        self.add(
            "login",
            False,
            "the key pair is generated when the connection is created: install its public "
            "key on the server, then test the connection"
            if pending
            else "there is no credential to log in with",
        )
        return self.report(presented)

    def login_failed(self, message: str, presented: str | None) -> ProbeReport:
        self.add("login", False, message)
        return self.report(presented)

    def folder(
        self,
        open_folder: Callable[[], RemoteFolder],
        *,
        result: Callable[[], RemoteFolder] | None,
        presented: str | None,
        username: str,
    ) -> ProbeReport:
        where = str(self._details.get("folder") or "/")
        try:
            session = open_folder()
        except DropyardError as exc:
            self._stage_failed(exc, username)
            return self.report(presented)
        with session:
            self._verdicts.setdefault(
                "reachable", Verdict("reachable", True, "the server answered")
            )
            self.add("login", True, f"logged in as '{username}'")
            try:
                self._list(session, where)
            except DropyardError as exc:
                self.add("folder readable", False, exc.message)
                return self.report(presented)
            if self._methodology == "deliver":
                try:
                    self._writable(session, where)
                except DropyardError as exc:
                    self.add("folder writable", False, exc.message)
        if result is not None and self._verdicts.get("folder readable", _NO).ok:
            result_folder = str(self._details.get("result_folder"))
            try:
                with result() as session:
                    self._writable(session, result_folder)
            except DropyardError as exc:
                self.add("folder writable", False, f"result folder {result_folder}: {exc.message}")
        return self.report(presented)

    def mailbox(
        self,
        open_box: Callable[[], AbstractContextManager[Mailbox]],
        attachments: AttachmentReader | None,
        username: str,
        *,
        presented: str | None = None,
    ) -> ProbeReport:
        where = str(self._details.get("folder") or "INBOX")
        try:
            with open_box() as box:
                self.add("reachable", True, "the server answered")
                self.add("login", True, f"logged in as '{username}'")
                waiting = list(box.messages())
                self.add(
                    "folder readable",
                    True,
                    f"mailbox {where}: {len(waiting)} messages not taken yet",
                )
                self._message_sample(box, waiting, attachments)
        except DropyardError as exc:
            self._stage_failed(exc, username)
        return self.report(presented)

    # -- helpers ------------------------------------------------------------------------

    def _stage_failed(self, exc: DropyardError, username: str) -> None:
        stage = getattr(exc, "stage", "login")
        if stage == "reach" and "reachable" not in self._verdicts:
            self.add("reachable", False, exc.message)
            return
        self._verdicts.setdefault("reachable", Verdict("reachable", True, "the server answered"))
        if stage == "trust":
            self.add("trusted", False, exc.message)
        elif stage == "folder":
            self.add("login", True, f"logged in as '{username}'")
            self.add("folder readable", False, exc.message)
        else:
            self.add("login", False, exc.message)

    def _list(self, session: RemoteFolder, where: str) -> None:
        total = matching = 0
        matched: list[str] = []
        others: list[str] = []
        for entry in session.list():
            total += 1
            if takes(entry.name, self._pattern):
                matching += 1
                if len(matched) < _SAMPLE:
                    matched.append(entry.name)
            elif len(others) < _SAMPLE:
                others.append(entry.name)
        self.add("folder readable", True, f"{where} holds {total} files")
        self._sample = tuple((matched + others)[:_SAMPLE])
        if self._methodology != "pull":
            return
        if matching:
            self.add(
                "pattern matches",
                True,
                f"{matching} of {total} files match '{self._pattern}'",
            )
        elif total:
            self.add(
                "pattern matches",
                False,
                f"none of the {total} files in {where} matches '{self._pattern}'",
            )
        else:
            self.add("pattern matches", True, f"{where} is empty: nothing to match yet")

    def _writable(self, session: RemoteFolder, where: str) -> None:
        if session.probe_writable():
            self.add("folder writable", True, f"a test file was written to {where} and removed")
        else:
            self.add("folder writable", False, f"the login may not write to {where}")

    def _message_sample(
        self,
        box: Mailbox,
        waiting: list[Any],
        attachments: AttachmentReader | None,
    ) -> None:
        if not waiting:
            self.add("pattern matches", True, "the mailbox has no new message: nothing to match")
            return
        names_seen: list[str] = []
        whole = 0
        looked = 0
        for message in waiting:
            if looked >= _SAMPLE_MESSAGES or attachments is None:
                break
            if message.size > _SAMPLE_MESSAGE_BYTES:
                continue
            looked += 1
            parts = [name for name, _ in attachments(box.fetch(message.uid))]
            names_seen.extend(parts)
            if parts and all(takes(name, self._pattern) for name in parts):
                whole += 1
        self._sample = tuple(names_seen[:_SAMPLE])
        if not looked:
            self.add(
                "pattern matches",
                True,
                f"{len(waiting)} messages wait; their attachments are checked when pulled",
            )
        elif whole:
            self.add(
                "pattern matches",
                True,
                f"{whole} of the {looked} newest messages looked at have only attachments "
                f"matching '{self._pattern}'",
            )
        else:
            self.add(
                "pattern matches",
                False,
                f"none of the {looked} messages looked at has only attachments matching "
                f"'{self._pattern}'",
            )


_NO = Verdict("", False, "")
