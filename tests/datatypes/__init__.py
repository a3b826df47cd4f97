"""Inbound data types: readers, containers, schema validation and value parsers."""
