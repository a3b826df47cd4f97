"""What every inbound data type module provides to the pipeline, and what it gets.

A data type declares its columns as a `Schema` (schema.py) and imports valid rows into the
ledger inside the transaction the pipeline opened — the same transaction that changes the
file's state, so a file is imported whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from dropyard.datatypes.schema import RowError, Schema, ValidRow
from dropyard.datatypes.values import RowCode


@dataclass(frozen=True)
class ImportContext:
    file_id: int
    account_id: int
    connection_id: int
    timezone: ZoneInfo
    now: datetime
    window_days: int
    actor: str
    # Reports a rejected row (with its error) to the error file.
    reject: Callable[[ValidRow, RowError], None]


@dataclass
class ImportOutcome:
    """What the data type adds to the summary: file-level failure, notes."""

    file_error: tuple[str, str] | None = None  # (code, message): nothing is imported
    notes: dict[str, int] = field(default_factory=dict)


class Importer(Protocol):
    """One file's import. `add` each valid row in order, `rejected` each row the schema
    refused (between the adds, in file order), then `finish` once."""

    def add(self, row: ValidRow) -> None: ...

    def rejected(self, line: int, texts: Mapping[str, str], code: RowCode) -> None: ...

    def finish(self, *, total_rows: int, rejected_rows: int) -> ImportOutcome: ...


class DataType(Protocol):
    name: str
    allow_xlsx: bool

    def schema(self, *, allow_extra: bool) -> Schema: ...

    def importer(self, session: Session, ctx: ImportContext) -> Importer: ...


class RowsStandAlone:
    """For importers whose rows do not depend on each other: a refused row changes
    nothing else."""

    def rejected(self, line: int, texts: Mapping[str, str], code: RowCode) -> None:
        return None
