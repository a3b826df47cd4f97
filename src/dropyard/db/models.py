"""Imports every table so that metadata (and Alembic) see the whole schema."""

from __future__ import annotations

from dropyard.accounts import models as accounts
from dropyard.cluster import models as cluster
from dropyard.connections import models as connections
from dropyard.credentials import models as credentials
from dropyard.db.base import Base
from dropyard.files import models as files
from dropyard.ledger import models as ledger
from dropyard.remote import models as remote

__all__ = [
    "Base",
    "accounts",
    "cluster",
    "connections",
    "credentials",
    "files",
    "ledger",
    "remote",
]
