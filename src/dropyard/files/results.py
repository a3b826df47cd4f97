"""Result files of an inbound file: the summary JSON and the gzipped error CSV.

They are answered on the channel the file came from (formats/results.md): the hosted
folder, the remote result folder, or the return email address. `ResultChannel` is that
choice; the pipeline only hands it the two files.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from dropyard.files import names

STATUS_OF_STATE = {
    "processed": "COMPLETED",
    "partial": "PARTIAL",
    "failed": "FAILED",
    "duplicate": "DUPLICATE",
    "dead": "FAILED",
}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Summary:
    trace_id: str
    file_name: str
    connection: str
    data_type: str
    state: str
    total_rows: int
    ok_rows: int
    error_rows: int
    file_errors: tuple[tuple[str, str], ...]
    received_at: datetime
    finished_at: datetime

    def document(self) -> dict[str, Any]:
        return {
            "traceId": self.trace_id,
            "fileName": self.file_name,
            "connection": self.connection,
            "dataType": self.data_type,
            "status": STATUS_OF_STATE[self.state],
            "totalRowCount": self.total_rows,
            "successfulRowCount": self.ok_rows,
            "errorRowCount": self.error_rows,
            "fileErrors": [{"errorType": c, "message": m} for c, m in self.file_errors],
            "receivedAt": _iso(self.received_at),
            "finishedAt": _iso(self.finished_at),
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.document(), indent=2) + "\n").encode()


class ErrorFile:
    """The failed rows as sent, plus LineNumber, ErrorType, ErrorMessage — gzipped CSV,
    written to a temp file as rows fail so memory stays flat."""

    def __init__(self, directory: Path, header: Sequence[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".errors-", suffix=".csv.gz", dir=directory)
        self.path = Path(name)
        self._raw = os.fdopen(fd, "wb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb")
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="")
        self._writer = csv.writer(self._text)
        self._width = len(header)
        self._writer.writerow([*header, "LineNumber", "ErrorType", "ErrorMessage"])
        self.rows = 0

    def add(
        self, line: int, fields: Sequence[str] | None, raw: str, code: str, message: str
    ) -> None:
        cells = list(fields) if fields is not None else [raw]
        if len(cells) < self._width:
            cells += [""] * (self._width - len(cells))
        self._writer.writerow([*cells, str(line), code, message])
        self.rows += 1

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._text.close()
        # GzipFile leaves a file object it was given open: its buffered tail (the gzip
        # trailer) must reach the disk before the file is moved or uploaded.
        self._raw.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class ResultChannel(Protocol):
    def deliver(
        self, *, connection_id: int, file_name: str, summary: bytes, errors: Path | None
    ) -> None:
        """Place the summary (and the error file, when rows failed) where the partner
        looks for them."""


def result_names(file_name: str) -> tuple[str, str]:
    return names.summary_name(file_name), names.errors_name(file_name)
