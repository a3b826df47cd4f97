"""Two nodes of one installation: two Dropyards with data dirs of their own, sharing the
database (SQLite or PostgreSQL, as `app` does) and the master key."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from dropyard.app import Dropyard, build
from dropyard.settings import Settings

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_MASTER_KEY = base64.b64encode(bytes(range(1, 33))).decode()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Node A's settings (the `app` fixture builds node A from them)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_host="127.0.0.1",
        allow_networks=["127.0.0.0/8"],
        master_key=MASTER_KEY,
    )


def other_node(settings: Settings, data_dir: Path, **changes: object) -> Settings:
    """Another node's settings: its own data dir, the same database."""
    return settings.model_copy(update={"data_dir": data_dir, **changes})


@pytest.fixture
def node_b(settings: Settings, tmp_path: Path, app: Dropyard) -> Iterator[Dropyard]:
    """Node B, after node A (`app`) exists."""
    dropyard = build(other_node(settings, tmp_path / "node-b"))
    yield dropyard
    dropyard.close()
