"""Dropyard: batch data connections between a platform and its partners."""

__version__ = "0.1.0"
