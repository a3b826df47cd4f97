"""The Storage protocol and the key rules every backend shares.

Keys are `/`-separated and built by Dropyard from ids and checked names, never taken from
a client as they are. An object appears only when complete (`put_file` is atomic).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from dropyard.errors import Invalid

_SEGMENT_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified_at: datetime


class Storage(Protocol):
    def put_file(self, key: str, source: Path) -> None:
        """Move a complete, fsynced local file into storage under `key`, atomically."""

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        """Store small content (receipts, summaries) atomically; `durable=False` may skip
        the flush to disk for content that can be made again."""

    def open(self, key: str) -> BinaryIO:
        """A seekable binary reader; raises NotFound."""

    def stat(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects directly under `prefix/`, streamed (never the whole listing at once)."""

    def delete(self, key: str) -> bool:
        """True when something was deleted."""

    def check(self) -> None:
        """Raise a DropyardError when the storage cannot be used now (readiness checks)."""


def check_key(key: str) -> list[str]:
    """The segments of a well-formed key; Invalid for anything that could escape."""
    segments = key.split("/")
    for segment in segments:
        if (
            not segment
            or segment in (".", "..")
            or _SEGMENT_FORBIDDEN.search(segment)
            or len(segment.encode()) > 255
        ):
            raise Invalid(f"storage key '{key[:100]}' is not allowed")
    return segments
