"""API test fixtures: a TestClient over a fresh Dropyard (once on SQLite, once on
PostgreSQL) and tenants with one token per role, made as the operator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dropyard.app import Dropyard
from dropyard.web.api.app import create_app
from tests.api.helpers import Tenant, make_tenant


@pytest.fixture
def client(app: Dropyard) -> Iterator[TestClient]:
    with TestClient(create_app(app)) as test_client:
        yield test_client


@pytest.fixture
def acme(app: Dropyard) -> Tenant:
    return make_tenant(app, "brand")


@pytest.fixture
def other(app: Dropyard) -> Tenant:
    return make_tenant(app, "brand")
