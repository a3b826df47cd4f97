"""The far side of every test here: Dropyard's own hosted SFTP (a real `dropyard serve`),
where account A has an outbound hosted folder holding one report file. Account B's pull
connections point at it over 127.0.0.1, which the near side (the in-process app, the CLI)
is allowed to reach through `allow_networks`. One server per test worker, on SQLite.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dropyard.app import Dropyard, build
from dropyard.cluster.secrets import InstallationSecrets
from dropyard.connections.service import Created
from tests.cli.conftest import Cli, make_cli
from tests.support import OPERATOR, DropBox, RunningServer, drop_box, served, unique, walk_wizard
from tests.ui.conftest import browser, new_page  # noqa: F401 (the browser fixtures)

ALLOW = {"DROPYARD_ALLOW_NETWORKS": json.dumps(["127.0.0.1/32"])}


def keygen_fingerprint(app: Dropyard, name: str, work: Path) -> str:
    """What `ssh-keygen -lf` says the SHA-256 fingerprint of the server's host key `name`
    is (the installation keeps its host keys in the database, sealed)."""
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is missing (apt-get install openssh-client)")
    private = InstallationSecrets(app.sessions, app.box).get(name)
    assert private is not None, f"the server made no {name}"
    key = work / name
    key.touch(mode=0o600)
    key.write_bytes(private)
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(key)], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    found = re.search(r"SHA256:[A-Za-z0-9+/]{43}", out)
    assert found, out
    return found.group(0)


@dataclass
class FarSide:
    server: RunningServer
    app: Dropyard  # the near side: the server's database and keys, 127.0.0.1 allowed
    box: DropBox  # account A's hosted folder
    sample: str  # the one file it holds
    account_id: int  # account B, whose pull connections reach A's folder
    fingerprint: str  # the host key the server presents, as ssh-keygen prints it
    other_fingerprint: str  # its other host key: a real key, not the one presented

    @property
    def port(self) -> int:
        return self.server.ports["sftp"]

    def details(self, **changes: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "folder": f"/{self.box.folder}",
            "file_pattern": "*.csv",
        }
        return base | changes

    def login(self, password: str | None = None, *, name: str | None = None) -> dict[str, Any]:
        return {
            "new": {
                "kind": "remote_password",
                "name": name or unique("partner login"),
                "username": self.box.login,
                "password": self.box.password if password is None else password,
            }
        }

    def pull(
        self,
        *,
        details: Mapping[str, Any] | None = None,
        password: str | None = None,
    ) -> int:
        """A pull connection of account B, made through the wizard and the service."""
        created: Created = walk_wizard(
            self.app,
            OPERATOR,
            account=self.account_id,
            name=unique("Pull"),
            direction="inbound",
            data_type="conversions",
            method="sftp",
            methodology="pull",
            details=self.details(**(details or {})),
            credential=self.login(password),
        )
        return created.connection.id

    def cli(self, *, allowed: bool = True) -> Cli:
        cli = make_cli(self.server.settings.data_dir, self.server.settings.resolved_database_url)
        if allowed:
            cli.env.update(ALLOW)
        return cli


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def far_side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FarSide]:
    data_dir = tmp_path_factory.mktemp("remote-surfaces")
    with served("sqlite", data_dir, name="dropyard_rs", roles="sftp") as running:
        app = build(running.settings.model_copy(update={"allow_networks": ["127.0.0.1/32"]}))
        # Account A's outbound hosted folder, holding one report file for partners to take.
        box = drop_box(app, direction="outbound", data_type="reports", methodology="hosted")
        made = app.outbound.run(box.connection_id)
        assert made.file is not None, made.reason
        work = tmp_path_factory.mktemp("keys")
        account = app.accounts.create_account(OPERATOR, name=unique("Puller"), kind="brand")
        yield FarSide(
            server=running,
            app=app,
            box=box,
            account_id=account.id,
            sample=made.file.name,
            # Dropyard's client asks for Ed25519 first, as OpenSSH does.
            fingerprint=keygen_fingerprint(app, "ssh_host_ed25519_key", work),
            other_fingerprint=keygen_fingerprint(app, "ssh_host_rsa_key", work),
        )
        app.close()
