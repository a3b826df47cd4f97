"""Every inbound data type, by name: what the pipeline looks up for a connection."""

from __future__ import annotations

from dropyard.datatypes.action_modifications import ActionModifications
from dropyard.datatypes.base import DataType
from dropyard.datatypes.clicks import Clicks
from dropyard.datatypes.conversions import Conversions
from dropyard.datatypes.product_catalogs import ProductCatalogs


def inbound_types() -> dict[str, DataType]:
    found: list[DataType] = [Conversions(), ActionModifications(), Clicks(), ProductCatalogs()]
    return {data_type.name: data_type for data_type in found}
