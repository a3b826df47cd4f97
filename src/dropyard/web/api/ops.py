"""Routes for the machines that watch Dropyard: /readyz for load balancers, /metrics for
Prometheus. Neither needs an account; /metrics asks for the `metrics_token` when set."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from dropyard.app import Dropyard
from dropyard.errors import Unauthenticated
from dropyard.health import readiness
from dropyard.metrics import token_matches

router = APIRouter(include_in_schema=False)


def _dropyard(request: Request) -> Dropyard:
    app: Dropyard = request.app.state.dropyard
    return app


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """200 when the database, storage and queue all answer; 503 naming those that don't."""
    found = await readiness(_dropyard(request))
    return JSONResponse(
        {"status": "ready" if found.ready else "not ready", "checks": dict(found.checks)},
        status_code=200 if found.ready else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/metrics")
def metrics(request: Request) -> Response:
    app = _dropyard(request)
    token = app.settings.metrics_token
    if token and not token_matches(request.headers.get("authorization"), token):
        raise Unauthenticated("/metrics needs 'Authorization: Bearer <metrics token>'")
    return Response(
        app.metrics.exposition(),
        media_type=app.metrics.content_type,
        headers={"Cache-Control": "no-store"},
    )
