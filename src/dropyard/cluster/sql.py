"""The one SQL shape the cluster tables need on both engines: insert a row unless its key
is taken. A plain INSERT would raise on the unique key and (on PostgreSQL) spoil the
transaction; ON CONFLICT DO NOTHING lets the loser of a race carry on and read the
winner's row in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dropyard.db.base import Base


def insert_if_missing(session: Session, model: type[Base], **values: Any) -> bool:
    """INSERT `values` into `model`'s table; False (and no error) when the key exists."""
    statement: PgInsert | SqliteInsert
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement = pg_insert(model)
    elif dialect == "sqlite":
        statement = sqlite_insert(model)
    else:
        raise NotImplementedError(f"no insert-if-missing for the {dialect} database")
    key = model.__table__.primary_key.columns  # type: ignore[attr-defined]
    # RETURNING, not rowcount: psycopg reports -1 for an ORM-enabled insert.
    done = session.execute(statement.values(**values).on_conflict_do_nothing().returning(*key))
    return done.first() is not None
