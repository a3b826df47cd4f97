"""Detail fields as form inputs, and form answers back as the input a service takes.

A detail field `host` is the form input `details.host`; a service's error for `host` (or
the wizard's for `details.host`) is shown next to that input. Checkboxes come after a
hidden "false" of the same name, so an unticked box says "no" rather than nothing (which
would mean "the default", and `send_empty` defaults to yes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from dropyard.connections.details import FieldSpec
from dropyard.web.ui.console import field_id, last

DETAILS = "details."


@dataclass(frozen=True)
class FieldView:
    """One input as a template draws it."""

    name: str
    id: str
    label: str
    kind: str
    required: bool
    help: str
    choices: tuple[str, ...]
    value: str
    checked: bool
    error: str | None


def shown(value: object) -> str:
    """A stored value as an input shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def field_views(
    specs: Iterable[FieldSpec],
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    *,
    prefix: str = DETAILS,
) -> list[FieldView]:
    """Inputs for `specs`, filled from `values` (by field name; a default where absent),
    with the error of `prefix + name` next to each."""
    views: list[FieldView] = []
    for spec in specs:
        value = values.get(spec.name, spec.default)
        text = shown(value)
        views.append(
            FieldView(
                name=prefix + spec.name,
                id=field_id(prefix + spec.name),
                label=spec.label,
                kind=spec.kind,
                required=spec.required,
                help=spec.help,
                choices=spec.choices,
                value=text,
                checked=text == "true",
                error=errors.get(prefix + spec.name),
            )
        )
    return views


def details_from(form: FormData, names: Iterable[str] | None = None) -> dict[str, str]:
    """The `details.*` answers of a form, as typed; only `names` when given."""
    wanted = None if names is None else set(names)
    answers: dict[str, str] = {}
    for key in form:
        if not key.startswith(DETAILS):
            continue
        name = key.removeprefix(DETAILS)
        value = last(form, key)
        if value is not None and (wanted is None or name in wanted):
            answers[name] = value
    return answers


def prefixed(errors: Mapping[str, str], prefix: str = DETAILS) -> dict[str, str]:
    """A service's errors keyed by bare field names, keyed as the form names them."""
    return {
        key if key.startswith(prefix) or key == prefix.rstrip(".") else prefix + key: text
        for key, text in errors.items()
    }
