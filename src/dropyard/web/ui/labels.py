"""Words the console shows for stored values. The long labels come from the rules table;
these are the short forms a table column has room for."""

from __future__ import annotations

from dropyard.connections.rules import (
    DATA_TYPE_LABELS,
    DIRECTION_LABELS,
    METHOD_LABELS,
    as_direction,
    as_methodology,
    row,
)
from dropyard.credentials.service import CredentialView
from dropyard.errors import Invalid

SHORT_KINDS: dict[str, str] = {
    "hosted_password": "Password",
    "hosted_public_key": "Public key",
    "remote_password": "Password on the partner's server",
    "remote_key_pair": "Key pair for the partner's server",
}


def credential_label(view: CredentialView) -> str:
    login = view.login or view.username
    return f"{view.name} — {SHORT_KINDS.get(view.kind, view.kind)}" + (
        f" (login {login})" if login else ""
    )


def methodology_label(direction: str, methodology: str) -> str:
    try:
        return row(as_direction(direction), as_methodology(methodology)).label
    except Invalid:
        return methodology


_DATA_TYPES = {str(k): v for k, v in DATA_TYPE_LABELS.items()}
_DIRECTIONS = {str(k): v for k, v in DIRECTION_LABELS.items()}
_METHODS = {str(k): v for k, v in METHOD_LABELS.items()}


def data_type_label(value: str) -> str:
    return _DATA_TYPES.get(value, value)


def direction_label(value: str) -> str:
    return _DIRECTIONS.get(value, value)


def method_label(value: str) -> str:
    return _METHODS.get(value, value)
