"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from dropyard import __version__
from dropyard.app import Dropyard


def create_app(app: Dropyard) -> FastAPI:
    api = FastAPI(
        title="Dropyard",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    api.state.dropyard = app

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return api
