"""The one error tree of Dropyard.

Services raise these; each edge (API, CLI, protocol adapters) maps them to its wire.
`Transient` errors are worth retrying (network, lock timeouts); `Terminal` ones are not.
"""

from __future__ import annotations

from collections.abc import Mapping


class DropyardError(Exception):
    """Base of every error a user may see. `message` is safe to show."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Transient(DropyardError):
    """Retry later: the cause is outside the request (network, a busy database)."""

    code = "transient"


class Terminal(DropyardError):
    """Retrying will not help: the input itself is at fault."""

    code = "terminal"


class NotFound(Terminal):
    code = "not_found"


class Invalid(Terminal):
    """Input that breaks a rule. `errors` maps field names to messages."""

    code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, field=field)
        merged = dict(errors or {})
        if field is not None and field not in merged:
            merged[field] = message
        self.errors: dict[str, str] = merged

    @classmethod
    def of(cls, errors: Mapping[str, str]) -> Invalid:
        """One Invalid for several field errors at once."""
        text = "; ".join(f"{name}: {msg}" for name, msg in errors.items())
        return cls(text, errors=errors)


class Forbidden(Terminal):
    code = "forbidden"


class Unauthenticated(Terminal):
    code = "unauthenticated"


class Conflict(Terminal):
    code = "conflict"


class QuotaExceeded(Terminal):
    code = "quota_exceeded"
