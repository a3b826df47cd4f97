"""Mounts the web console on the FastAPI application: its pages at `/`, its static files
at `/static`.

Every console route is a `ConsoleRoute` (console.py): refusals and service errors become
HTML pages there, and cookies and security headers are written. The API's own routes and
error handling stay as they are.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from dropyard.app import Dropyard
from dropyard.web.ui.console import STATIC, Console
from dropyard.web.ui.routes import auth, connections, credentials, files, wizard
from dropyard.web.ui.security import add_security_headers


class ConsoleStatic(StaticFiles):
    """The console's CSS, JS and icon, with the same security headers as its pages."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        add_security_headers(response, cache=True)
        if response.status_code == 200:  # pages ask for them by digest (?v=...)
            response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def mount_ui(api: FastAPI, dropyard: Dropyard, *, https: bool | None = None) -> None:
    """Add the console to `api`. `https`: the console is reached over https (directly or
    through a TLS proxy), so its cookies are sent only over https; by default the
    `web_https` setting, and any request that arrives over https gets them so anyway."""
    secure = dropyard.settings.web_https if https is None else https
    api.state.ui_console = Console(dropyard, https=secure)
    router = APIRouter()
    for module in (auth, wizard, connections, files, credentials):
        router.include_router(module.router)
    api.include_router(router, include_in_schema=False)
    api.mount("/static", ConsoleStatic(directory=STATIC), name="ui-static")
