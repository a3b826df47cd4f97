"""File name rules for what partners upload (formats/README.md, "Names")."""

from __future__ import annotations

import re

from dropyard.errors import Invalid

RESERVED_PREFIXES = ("receipt_", "result_")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_upload_name(name: str) -> str:
    """The name as given, or Invalid saying what is wrong with it."""
    if not name:
        raise Invalid("a file name is required", field="name")
    shown = _CONTROL.sub("?", name)[:100]
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise Invalid(f"file name '{shown}' is longer than 255 bytes", field="name")
    if "/" in name or "\\" in name:
        raise Invalid(f"file name '{shown}' may not contain '/' or '\\'", field="name")
    if _CONTROL.search(name):
        raise Invalid(f"file name '{shown}' contains a control character", field="name")
    if name.startswith("."):
        raise Invalid(f"file name '{shown}' may not start with '.'", field="name")
    if name.lower().startswith(RESERVED_PREFIXES):
        raise Invalid(
            f"file name '{shown}' is reserved: names starting receipt_ or result_ are "
            "Dropyard's own",
            field="name",
        )
    return name


def is_reserved(name: str) -> bool:
    return name.lower().startswith(RESERVED_PREFIXES)


def _fit(prefix: str, name: str, suffix: str) -> str:
    """`prefix + name + suffix`, the name cut so the whole stays within 255 bytes."""
    room = 255 - len(prefix.encode()) - len(suffix.encode())
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > room:
        name = raw[:room].decode("utf-8", "ignore")
    return f"{prefix}{name}{suffix}"


def receipt_name(name: str) -> str:
    return _fit("receipt_", name, ".txt")


def summary_name(name: str) -> str:
    return _fit("result_", name, "_summary.json")


def errors_name(name: str) -> str:
    return _fit("result_", name, "_errors.csv.gz")
