"""What every CLI command shares: the app from global options, output, and error exits.

Errors go to stderr as one line (or one JSON document with --json) and exit non-zero:
2 for bad input (Invalid, NotFound, Conflict), 1 for anything else a user can act on.
No stack trace reaches the user.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer

from dropyard.app import Dropyard, build
from dropyard.errors import Conflict, DropyardError, Invalid, NotFound
from dropyard.settings import Settings, load_settings

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class CliState:
    data_dir: Path | None = None
    config: Path | None = None
    _app: Dropyard | None = None

    def settings(self) -> Settings:
        overrides: dict[str, Any] = {}
        if self.data_dir is not None:
            overrides["data_dir"] = self.data_dir
        return load_settings(config_file=self.config, overrides=overrides)

    def app(self) -> Dropyard:
        if self._app is None:
            self._app = build(self.settings())
        return self._app


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def emit(data: Any, *, as_json: bool, human: Callable[[], None] | None = None) -> None:
    if as_json or human is None:
        sys.stdout.write(json.dumps(to_jsonable(data), indent=None) + "\n")
    else:
        human()


def fail(exc: DropyardError, *, as_json: bool) -> None:
    code = 2 if isinstance(exc, Invalid | NotFound | Conflict) else 1
    if as_json:
        payload: dict[str, Any] = {"error": exc.code, "message": exc.message}
        if isinstance(exc, Invalid) and exc.errors:
            payload["errors"] = exc.errors
        elif exc.field:
            payload["errors"] = {exc.field: exc.message}
        sys.stderr.write(json.dumps(payload) + "\n")
    else:
        sys.stderr.write(f"error: {exc.message}\n")
        if isinstance(exc, Invalid) and len(exc.errors) > 1:
            for name, message in exc.errors.items():
                sys.stderr.write(f"  {name}: {message}\n")
    raise typer.Exit(code)


@contextmanager
def errors_to_exit(as_json: bool) -> Iterator[None]:
    try:
        yield
    except DropyardError as exc:
        fail(exc, as_json=as_json)


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: DropyardError becomes a clean message and exit code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return func(*args, **kwargs)
        except DropyardError as exc:
            fail(exc, as_json=as_json)
            raise AssertionError("unreachable") from exc

    return wrapper


__all__ = [
    "CliState",
    "asdict",
    "emit",
    "errors_to_exit",
    "fail",
    "handles_errors",
    "state",
    "to_jsonable",
]
