"""Every inbound data type, by name: what the pipeline looks up for a connection."""

from __future__ import annotations

from dropyard.datatypes.base import DataType


def inbound_types() -> dict[str, DataType]:
    found: dict[str, DataType] = {}
    return found
