"""The FastAPI application factory: the REST API under /api/v1, its OpenAPI document at
/api/openapi.json, /healthz, and /readyz and /metrics (web/api/ops.py)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from dropyard import __version__
from dropyard.app import Dropyard
from dropyard.web.api import errors, ops
from dropyard.web.api.deps import caller
from dropyard.web.api.routes import (
    accounts,
    connections,
    credentials,
    downloads,
    files,
    ledger,
    wizard,
)
from dropyard.web.api.wizard_state import StateCodec
from dropyard.web.ui.app import mount_ui

API_PREFIX = "/api/v1"


def create_app(app: Dropyard) -> FastAPI:
    api = FastAPI(
        title="Dropyard",
        version=__version__,
        description="Batch data connections. Every route acts on the API token's account.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    api.state.dropyard = app
    api.state.wizard_states = StateCodec(app.box)
    errors.install(api)

    v1 = APIRouter(
        prefix=API_PREFIX, dependencies=[Depends(caller)], responses=errors.ERROR_RESPONSES
    )
    for module in (accounts, credentials, wizard, connections, files, ledger):
        v1.include_router(module.router)
    api.include_router(v1)

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    api.include_router(ops.router)
    api.include_router(downloads.router)  # /d/<token>: signed links, no API token

    mount_ui(api, app)
    return api
