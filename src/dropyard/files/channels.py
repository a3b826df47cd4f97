"""Where a file's results go: the channel it came from (formats/results.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

from sqlalchemy import select

from dropyard.connections.models import Connection
from dropyard.db.base import utcnow
from dropyard.db.engine import SessionFactory, transaction
from dropyard.errors import DropyardError
from dropyard.files.models import File, FileEvent
from dropyard.files.results import result_names
from dropyard.files.service import FileService
from dropyard.remote.mailer import Mailer

log = logging.getLogger(__name__)


class RemoteResults(Protocol):
    def deliver(self, connection_id: int, name: str, data: bytes | Path) -> None: ...


class ConnectionResults:
    """Hosted folders get the files; email connections mail them to the return address;
    pull connections write them to the partner's result folder when one is set."""

    def __init__(
        self,
        sessions: SessionFactory,
        files: FileService,
        *,
        mailer: Mailer | None = None,
        remote: RemoteResults | None = None,
    ) -> None:
        self._sessions = sessions
        self._files = files
        self._mailer = mailer
        self._remote = remote

    def deliver(
        self, *, connection_id: int, file_name: str, summary: bytes, errors: Path | None
    ) -> None:
        with self._sessions() as session:
            connection = session.get(Connection, connection_id)
            if connection is None:
                return
            method, methodology = connection.method, connection.methodology
            details = dict(connection.details)
            name = connection.name
        summary_name, errors_name = result_names(file_name)
        if method == "email":
            self._mail(details, name, file_name, summary_name, summary, errors_name, errors)
        elif methodology == "pull":
            if details.get("result_folder") and self._remote is not None:
                self._to_result_folder(
                    self._remote,
                    connection_id,
                    str(details["result_folder"]),
                    summary,
                    [(summary_name, summary)] + ([(errors_name, errors)] if errors else []),
                )
        else:
            self._files.put_folder_file(connection_id, summary_name, summary)
            if errors is not None:
                self._files.move_into_folder(connection_id, errors_name, errors)
            else:  # an earlier file of the same name may have left one: it is not this one's
                self._files.delete_folder_file(connection_id, errors_name)

    def _to_result_folder(
        self,
        remote: RemoteResults,
        connection_id: int,
        where: str,
        summary: bytes,
        results: list[tuple[str, bytes | Path]],
    ) -> None:
        """Upload the results to the partner's server. A failure does not fail the import:
        it is logged and noted in the file's history."""
        for name, data in results:
            try:
                remote.deliver(connection_id, name, data)
            except DropyardError as exc:
                reason = f"{name} not written to {where}: {exc.message}"
            except OSError as exc:
                reason = f"{name} not written to {where}: local error: {exc.strerror or exc}"
            else:
                continue
            log.warning("connection %s: %s", connection_id, reason)
            self._note(connection_id, summary, reason)

    def _note(self, connection_id: int, summary: bytes, reason: str) -> None:
        """A history event on the file the summary answers (found by its trace id)."""
        try:
            trace_id = str(json.loads(summary)["traceId"])
        except (ValueError, KeyError, TypeError):
            return
        with transaction(self._sessions) as session:
            row = session.scalar(
                select(File).where(File.trace_id == trace_id, File.connection_id == connection_id)
            )
            if row is not None:
                session.add(FileEvent(file_id=row.id, at=utcnow(), state=row.state, reason=reason))

    def _mail(
        self,
        details: dict[str, object],
        connection_name: str,
        file_name: str,
        summary_name: str,
        summary: bytes,
        errors_name: str,
        errors: Path | None,
    ) -> None:
        to = details.get("return_email")
        if not to or self._mailer is None:
            return
        attachments = [(summary_name, summary, "application/json")]
        if errors is not None:
            attachments.append((errors_name, errors.read_bytes(), "application/gzip"))
        self._mailer.send(
            [str(to)],
            f"Dropyard: results for {file_name}",
            f"The file {file_name} sent to {connection_name} was processed. "
            "The summary is attached" + (", with the rows that failed." if errors else "."),
            attachments,
        )
