"""Test helpers: a real `dropyard serve` process, and ways to provision what tests need."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from dropyard.accounts.actors import Actor, operator
from dropyard.app import Dropyard, build
from dropyard.connections import wizard
from dropyard.connections.service import Created
from dropyard.settings import Settings

OPERATOR = operator("tests")
_names = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix} {os.getpid()}-{next(_names)}"


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    settings: Settings
    ports: dict[str, int]
    app: Dropyard
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.app.close()
        return self.process.returncode


def start_server(
    data_dir: Path,
    database_url: str,
    *,
    extra_env: Mapping[str, str] | None = None,
    roles: str = "web,sftp,ftp,smtp",
) -> RunningServer:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPYARD_")}
    env.update(
        {
            "DROPYARD_DATA_DIR": str(data_dir),
            "DROPYARD_DATABASE_URL": database_url,
            "DROPYARD_WEB_PORT": "0",
            "DROPYARD_SFTP_PORT": "0",
            "DROPYARD_FTP_PORT": "0",
            "DROPYARD_SMTP_PORT": "0",
            "DROPYARD_PUBLIC_HOST": "127.0.0.1",
            "DROPYARD_SHUTDOWN_GRACE_SECONDS": "3",
            **(extra_env or {}),
        }
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "serve.log"
    ports_file = data_dir / "run" / "ports.json"
    ports_file.unlink(missing_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dropyard", "serve", "--roles", roles],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 60
    while not ports_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"dropyard serve did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    ports = json.loads(ports_file.read_text())
    # The in-process services see the server's own settings (queue, mail domain, limits).
    # List settings travel through the environment as JSON, as pydantic-settings reads them.
    same = {
        k[len("DROPYARD_") :].lower(): json.loads(v) if v.startswith(("[", "{")) else v
        for k, v in (extra_env or {}).items()
    }
    settings = Settings.model_validate(
        {
            **same,
            "data_dir": data_dir,
            "database_url": database_url,
            "public_host": "127.0.0.1",
            "sftp_port": ports.get("sftp", 0),
            "ftp_port": ports.get("ftp", 0),
        }
    )
    return RunningServer(process, settings, ports, build(settings), log_path, env)


def fresh_postgres(admin_url: str, name: str) -> str:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextlib.contextmanager
def served(
    database: str,
    data_dir: Path,
    *,
    name: str,
    roles: str = "web,sftp,ftp,smtp",
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[RunningServer]:
    """A `dropyard serve` on SQLite (in data_dir) or on a fresh PostgreSQL database
    `name`, dropped afterwards. Without PostgreSQL: skipped locally, failed under CI."""
    import pytest

    from tests.conftest import PG_ADMIN_URL, _postgres_available, _worker

    pg_name = f"{name}_{_worker()}"
    if database == "postgres":
        if not _postgres_available():
            if os.environ.get("CI"):
                pytest.fail("PostgreSQL is not reachable; CI must run these tests")
            pytest.skip("PostgreSQL is not reachable")
        url = fresh_postgres(PG_ADMIN_URL, pg_name)
    else:
        url = f"sqlite:///{data_dir / 'dropyard.db'}"
    running = start_server(data_dir, url, roles=roles, extra_env=extra_env)
    try:
        yield running
    finally:
        running.stop()
        if database == "postgres":
            drop_postgres(PG_ADMIN_URL, pg_name)


# -- provisioning through the same services and wizard a user drives --------------------


def walk_wizard(
    app: Dropyard,
    actor: Actor,
    *,
    account: str | int,
    name: str,
    direction: str,
    data_type: str,
    method: str,
    methodology: str,
    details: Mapping[str, Any] | None = None,
    credential: Mapping[str, Any] | None = None,
) -> Created:
    ctx = app.connections.wizard_context(actor, account=account)
    state = wizard.start()
    state = wizard.submit(state, {"name": name, "direction": direction}, ctx)
    state = wizard.submit(state, {"data_type": data_type}, ctx)
    state = wizard.submit(
        state,
        {"method": method, "methodology": methodology, "details": dict(details or {})},
        ctx,
    )
    state = wizard.submit(state, dict(credential or {}), ctx)
    return app.connections.create(actor, account=account, state=state)


@dataclass(frozen=True)
class DropBox:
    """An account with a hosted password login and one connection using it."""

    account_id: int
    connection_id: int
    folder: str
    login: str
    password: str
    credential_id: int


def drop_box(
    app: Dropyard,
    *,
    direction: str = "inbound",
    data_type: str = "conversions",
    method: str = "sftp",
    methodology: str = "push",
    details: Mapping[str, Any] | None = None,
    account_id: int | None = None,
    credential_id: int | None = None,
    password: str | None = None,
) -> DropBox:
    if account_id is None:
        account_id = app.accounts.create_account(OPERATOR, name=unique("Brand"), kind="brand").id
    credential: dict[str, Any]
    if credential_id is None:
        credential = {"new": {"kind": "hosted_password", "name": unique("login")}}
    else:
        credential = {"credential_id": credential_id}
    created = walk_wizard(
        app,
        OPERATOR,
        account=account_id,
        name=unique("Box"),
        direction=direction,
        data_type=data_type,
        method=method,
        methodology=methodology,
        details=details,
        credential=credential,
    )
    view = app.credentials.get(OPERATOR, created.connection.credential_id or 0)
    secret = created.provisioned.password if created.provisioned else password
    return DropBox(
        account_id=account_id,
        connection_id=created.connection.id,
        folder=created.connection.folder,
        login=view.login or "",
        password=secret or "",
        credential_id=view.id,
    )


@contextlib.contextmanager
def env_removed(*names: str) -> Iterator[None]:
    saved = {n: os.environ.pop(n) for n in names if n in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
