"""Outbound file names: the connection's name template, rendered for one run.

Date parts come from the run time in the connection's time zone, so a daily file made at
02:00 in Europe/Paris is named for that Paris date. The details validator has already
refused unknown placeholders; the rendered name is checked like an uploaded name except
that Dropyard's own files may use any prefix.
"""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo

from dropyard.connections.details import DEFAULT_NAME_TEMPLATE
from dropyard.errors import Invalid
from dropyard.outbound.writer import extension

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_SLUG = re.compile(r"[^a-z0-9._-]+")


def slug(text: str, *, fallback: str = "file") -> str:
    """A name as file names carry it: ASCII, lowercase, `_` for anything else."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = _NOT_SLUG.sub("_", ascii_text.lower()).strip("._-")
    return cleaned or fallback


def placeholders(
    *,
    connection: str,
    data_type: str,
    account: str,
    run_id: str,
    at: datetime,
    tz: ZoneInfo,
    fmt: str,
    compression: str = "none",
) -> dict[str, str]:
    """The value of every placeholder a template may use."""
    local = at.astimezone(tz)
    return {
        "connection": slug(connection, fallback="connection"),
        "data_type": data_type,
        "account": slug(account, fallback="account"),
        "yyyy": f"{local:%Y}",
        "mm": f"{local:%m}",
        "dd": f"{local:%d}",
        "HH": f"{local:%H}",
        "MM": f"{local:%M}",
        "SS": f"{local:%S}",
        "yyyymmdd": f"{local:%Y%m%d}",
        "yyyymmddHHMMSS": f"{local:%Y%m%d%H%M%S}",
        "run_id": run_id,
        "ext": extension(fmt, compression),
    }


def render_name(template: str | None, values: dict[str, str]) -> str:
    """The file name a template gives; Invalid when the result is not a usable name."""
    parts: list[str] = []
    for literal, field, _spec, _conversion in string.Formatter().parse(
        template or DEFAULT_NAME_TEMPLATE
    ):
        parts.append(literal)
        if field is not None:
            if field not in values:
                raise Invalid(f"name_template uses unknown placeholder {{{field}}}")
            parts.append(values[field])
    return check_generated_name("".join(parts))


def check_generated_name(name: str) -> str:
    """The upload name rules, without the reserved prefixes (these files are Dropyard's)."""
    shown = _CONTROL.sub("?", name)[:100]
    if not name:
        raise Invalid("the name template gives an empty file name", field="name_template")
    if len(name.encode("utf-8")) > 255:
        raise Invalid(f"file name '{shown}' is longer than 255 bytes", field="name_template")
    if "/" in name or "\\" in name:
        raise Invalid(f"file name '{shown}' may not contain '/' or '\\'", field="name_template")
    if _CONTROL.search(name):
        raise Invalid(f"file name '{shown}' contains a control character", field="name_template")
    if name.startswith("."):
        raise Invalid(f"file name '{shown}' may not start with '.'", field="name_template")
    return name
