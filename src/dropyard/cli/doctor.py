"""`dropyard doctor`: one line per check of the installation, ok/WARN/FAIL with the fix.

Exit 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from dropyard import doctor as checks
from dropyard.cli.common import emit, state
from dropyard.cli.output import JsonFlag
from dropyard.settings import ROLES

_LABEL = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def doctor_command(
    ctx: typer.Context,
    roles: Annotated[
        str, typer.Option("--roles", help=f"the roles to check for, of: {', '.join(ROLES)}")
    ] = ",".join(ROLES),
    as_json: JsonFlag = False,
) -> None:
    """Check settings, database, data dir, keys, storage, queue, ports and TLS."""
    chosen = [r.strip() for r in roles.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in ROLES]
    if unknown:
        typer.echo(
            f"error: unknown role(s): {', '.join(unknown)}; choose from {', '.join(ROLES)}",
            err=True,
        )
        raise typer.Exit(2)
    cli = state(ctx)
    overrides: dict[str, Any] = {}
    if cli.data_dir is not None:
        overrides["data_dir"] = cli.data_dir
    settings, loaded = checks.load(config_file=cli.config, overrides=overrides)
    found = [loaded]
    if settings is not None:
        found += checks.diagnose(settings, roles=chosen)
    failed = any(f.status == "fail" for f in found)

    def human() -> None:
        width = max(len(f.check) for f in found)
        for f in found:
            line = f"{_LABEL[f.status]}  {f.check:<{width}}  {f.detail}"
            if f.fix and f.status != "ok":
                line += f" -- fix: {f.fix}"
            typer.echo(line)
        bad = sum(f.status == "fail" for f in found)
        typer.echo(f"{bad} check(s) failed" if bad else "all checks passed")

    emit({"ok": not failed, "checks": found}, as_json=as_json, human=human)
    if failed:
        raise typer.Exit(1)
