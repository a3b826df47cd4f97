"""What the CLI commands share beyond `common`: the operator actor, guarded commands,
reading secrets and files, prompts, rich output, and errors that name their flags.

A secret read here (stdin, a hidden prompt) is only ever handed to a service call: it is
not echoed, logged, or put into an error message.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from functools import wraps
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.prompt import Confirm, Prompt
from rich.table import Table
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dropyard.accounts.actors import Actor, operator
from dropyard.cli.common import fail
from dropyard.errors import Conflict, DropyardError, Invalid

P = ParamSpec("P")
R = TypeVar("R")

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON document")]
AccountRef = Annotated[str, typer.Option("--account", help="account name or id")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="read the password from stdin (asked hidden on a terminal)"
    ),
]


def cli_actor() -> Actor:
    """The CLI runs on the server, as the operator of the installation."""
    return operator("cli")


def guarded(func: Callable[P, R]) -> Callable[P, R]:
    """A command whose every failure is a clean message and an exit code, never a trace.

    DropyardError goes through `common.fail` (2 for bad input, 1 otherwise); a database
    refusal of a concurrent duplicate is a Conflict; anything else a one-line error, exit 1
    (DROPYARD_DEBUG=1 shows the trace instead).
    """

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return func(*args, **kwargs)
        except DropyardError as exc:
            fail(exc, as_json=as_json)
        except IntegrityError as exc:
            conflict = Conflict("this conflicts with something that exists; nothing was written")
            fail(conflict, as_json=as_json)
            raise AssertionError("unreachable") from exc
        except (typer.Exit, typer.Abort):
            raise
        except (KeyboardInterrupt, EOFError):
            raise typer.Abort() from None
        except SQLAlchemyError as exc:
            if os.environ.get("DROPYARD_DEBUG"):
                raise
            fail(DropyardError(_database_problem(exc)), as_json=as_json)
        except Exception as exc:
            if os.environ.get("DROPYARD_DEBUG"):
                raise
            fail(DropyardError(f"unexpected {type(exc).__name__}: {exc}"), as_json=as_json)
        raise AssertionError("unreachable")

    return wrapper


def _database_problem(exc: SQLAlchemyError) -> str:
    """One line about a database failure: the driver's first line, and the likely fix."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    text = f"database error: {lines[0] if lines else type(exc).__name__}"
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        text += " (is the schema up to date? run: dropyard migrate)"
    return text


# -- input ------------------------------------------------------------------------------


def stdin_is_tty() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def read_password(*, field: str = "password", confirm: bool = False) -> str:
    """The password of --password-stdin: hidden prompt on a terminal, else all of stdin
    without its final line break. Never echoed."""
    if stdin_is_tty():
        password = getpass.getpass("Password: ", stream=sys.stderr)
        if confirm and getpass.getpass("Repeat it: ", stream=sys.stderr) != password:
            raise Invalid("the two passwords differ", field=field)
    else:
        password = sys.stdin.read()
        if password.endswith("\n"):
            password = password[:-1]
        if password.endswith("\r"):
            password = password[:-1]
    if not password:
        raise Invalid("no password was given on stdin", field=field)
    return password


def read_text_file(path: Path, *, field: str) -> str:
    """A small text file the user named (a public key); '-' reads stdin."""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        if path.stat().st_size > 100_000:
            raise Invalid(f"{path} is far too large for a public key", field=field)
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror or exc}", field=field) from None


def prompt_choice(
    console: Console,
    title: str,
    choices: Sequence[tuple[str, str]],
    *,
    default: str | None = None,
) -> str:
    """Ask for one of `choices` (value, label), showing the labels; Enter takes `default`.
    Anything else is asked again."""
    for value, label in choices:
        console.print(f"  [bold]{value}[/bold]  {label}", highlight=False)
    values = [value for value, _ in choices]
    if default is not None and default in values:
        return Prompt.ask(title, console=console, choices=values, default=default)
    return Prompt.ask(title, console=console, choices=values)


def prompt_text(console: Console, title: str, *, default: str | None = None) -> str:
    """Ask for text. Without a default an answer is required (asked again when empty);
    with default "" an empty answer is taken."""
    while True:
        if default is None:
            answer = Prompt.ask(title, console=console)
        else:
            answer = Prompt.ask(title, console=console, default=default, show_default=bool(default))
        if answer.strip() or default is not None:
            return answer.strip()
        console.print("[red]An answer is required.[/red]")


def prompt_yes(console: Console, title: str, *, default: bool) -> bool:
    return Confirm.ask(title, console=console, default=default)


# -- output -----------------------------------------------------------------------------


def console_for(as_json: bool) -> Console:
    """Where human output goes: stdout, or stderr when stdout carries the JSON answer."""
    return Console(stderr=as_json, highlight=False, soft_wrap=True)


def table(console: Console, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    grid = Table(show_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    count = 0
    for values in rows:
        grid.add_row(*("" if v is None else str(v) for v in values))
        count += 1
    if count:
        console.print(grid, soft_wrap=False)
    else:
        console.print("(none)")


def pairs(console: Console, items: Iterable[tuple[str, object]]) -> None:
    """Label: value lines, values never wrapped (keys and URIs get copied). A value of
    None is left out."""
    for label, value in items:
        if value is not None:
            console.print(f"  {label}: {shown(value)}", highlight=False, markup=False)


def shown(value: object) -> str:
    """A value as a person reads it: yes/no, lists joined, decimals without padding."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S %Z}".strip()
    return str(value)


def decimal_text(value: Decimal) -> str:
    """0.080000 as 0.08, 100 as 100 (never 1E+2)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def secret_notice(console: Console, lines: Iterable[tuple[str, str]]) -> None:
    """Generated secrets, printed this once."""
    console.print("[bold yellow]Shown only now; store it safely:[/bold yellow]")
    pairs(console, lines)


# -- errors -------------------------------------------------------------------------


def flag_for(field: str, flags: Mapping[str, str]) -> str:
    """The command-line flag that sets a service or wizard field."""
    if field in flags:
        return flags[field]
    base = field.removeprefix("details.")
    return "--" + base.replace("_", "-")


def with_flags(exc: Invalid, flags: Mapping[str, str]) -> Invalid:
    """The same errors, with a message that names the flags to fix."""
    if not exc.errors:
        return exc
    if len(exc.errors) == 1:
        ((field, text),) = exc.errors.items()
        message = f"{text} ({flag_for(field, flags)})"
    else:
        named = ", ".join(dict.fromkeys(flag_for(f, flags) for f in exc.errors))
        message = f"{len(exc.errors)} problems; fix {named}"
    return Invalid(message, errors=exc.errors)


@contextmanager
def naming_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """Invalid input raised inside names the flags that set the fields at fault."""
    try:
        yield
    except Invalid as exc:
        raise with_flags(exc, flags) from None
