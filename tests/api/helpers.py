"""Helpers of the API tests: tenants with tokens, request bodies, public keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient

from dropyard.accounts.models import ROLES
from dropyard.app import Dropyard
from tests.support import OPERATOR, unique

V1 = "/api/v1"


@dataclass(frozen=True)
class Tenant:
    """An account with one API token per role."""

    account_id: int
    name: str
    tokens: dict[str, str]
    token_ids: dict[str, int]

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def make_tenant(app: Dropyard, kind: str = "brand") -> Tenant:
    account = app.accounts.create_account(OPERATOR, name=unique(kind.title()), kind=kind)
    made = {
        role: app.accounts.create_token(OPERATOR, account=account.id, name=role, role=role)
        for role in ROLES
    }
    return Tenant(
        account_id=account.id,
        name=account.name,
        tokens={role: new.secret for role, new in made.items()},
        token_ids={role: new.token.id for role, new in made.items()},
    )


def public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " partner"


def push_body(name: str = "Orders", **changes: Any) -> dict[str, Any]:
    """A one-call document for an inbound SFTP push with a new hosted password."""
    body: dict[str, Any] = {
        "name": name,
        "direction": "inbound",
        "data_type": "conversions",
        "method": "sftp",
        "methodology": "push",
        "new_credential": {"kind": "hosted_password", "name": f"{name} login"},
    }
    body.update(changes)
    return body


def pull_body(name: str = "Partner feed", **details: Any) -> dict[str, Any]:
    """A one-call document for an inbound SFTP pull from the partner's server."""
    return {
        "name": name,
        "direction": "inbound",
        "data_type": "conversions",
        "method": "sftp",
        "methodology": "pull",
        "details": {"host": "sftp.partner.example", "folder": "/out", "file_pattern": "*.csv"}
        | details,
        "new_credential": {"kind": "remote_key_pair", "name": f"{name} key", "username": "dy"},
    }


def create(client: TestClient, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"{V1}/connections", json=body, headers=tenant.auth())
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def ids(client: TestClient, tenant: Tenant, path: str) -> set[int]:
    answer = client.get(f"{V1}/{path}", headers=tenant.auth("viewer"))
    assert answer.status_code == 200, answer.text
    return {item["id"] for item in answer.json()}


def upload(app: Dropyard, connection_id: int, name: str = "orders.csv") -> int:
    """A file received the way every protocol finishes an upload."""
    spool = app.files.open_spool()
    spool.write(b"EventDate,Amount\n2026-01-01,10\n")
    return app.files.commit(
        spool, connection_id=connection_id, name=name, source="sftp", actor=OPERATOR
    ).id
