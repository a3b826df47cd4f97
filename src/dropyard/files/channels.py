"""Where a file's results go: the channel it came from (formats/results.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from dropyard.connections.models import Connection
from dropyard.db.engine import SessionFactory
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
                self._remote.deliver(connection_id, summary_name, summary)
                if errors is not None:
                    self._remote.deliver(connection_id, errors_name, errors)
        else:
            self._files.put_folder_file(connection_id, summary_name, summary)
            if errors is not None:
                self._files.move_into_folder(connection_id, errors_name, errors)
            else:  # an earlier file of the same name may have left one: it is not this one's
                self._files.delete_folder_file(connection_id, errors_name)

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
