"""A console server for the browser tests: `create_app` with the console mounted, served by
uvicorn in a thread on 127.0.0.1, on a fresh database seeded with two accounts and their
users."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from dropyard.app import Dropyard, build
from dropyard.settings import Settings
from dropyard.web.api.app import create_app
from tests.support import OPERATOR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class User:
    email: str
    password: str
    role: str
    account_id: int


@dataclass
class Console:
    """A running console and the accounts and users seeded in it."""

    base_url: str
    app: Dropyard
    database: str
    admin: User
    member: User
    viewer: User
    other: User  # the admin of another account

    def url(self, path: str) -> str:
        return self.base_url + path


def seed(app: Dropyard, database: str, base_url: str) -> Console:
    users: dict[str, User] = {}
    for account_name, roles in (("Acme", ("admin", "member", "viewer")), ("Globex", ("admin",))):
        account = app.accounts.create_account(OPERATOR, name=account_name, kind="brand")
        for role in roles:
            email = f"{role}@{account_name.lower()}.example"
            app.accounts.create_user(
                OPERATOR, account=account.id, email=email, role=role, password=PASSWORD
            )
            key = role if account_name == "Acme" else "other"
            users[key] = User(email, PASSWORD, role, account.id)
    return Console(base_url=base_url, app=app, database=database, **users)


@dataclass
class _Running:
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(app: Dropyard) -> _Running:
    api = create_app(app)  # the console is part of the app
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(api, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)  # in a thread, it leaves the process's signals alone
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console server did not start")
        time.sleep(0.02)
    return _Running(server, thread, int(sock.getsockname()[1]))


def running_console(data_dir: Path, url: str, database: str) -> Iterator[Console]:
    settings = Settings(data_dir=data_dir, database_url=url, public_host="127.0.0.1")
    app = build(settings)
    app.migrate()
    running = serve(app)
    try:
        yield seed(app, database, f"http://127.0.0.1:{running.port}")
    finally:
        running.stop()
        app.close()
