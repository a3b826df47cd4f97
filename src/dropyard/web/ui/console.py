"""The console's per-request core: who is signed in, the form a POST carried (with its CSRF
token checked), page rendering, and the answers for refusals and errors.

Routes take `SignedIn`, `Admin` and `Posted` as dependencies; what a request changes in
the browser's keeping (a new session, a one-time notice) is noted on `request.state`
and written to the answer in one place, `Console.finish`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, cast
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dropyard.accounts.actors import Actor
from dropyard.app import Dropyard
from dropyard.credentials.secrets import load_or_create_master_key
from dropyard.errors import Conflict, DropyardError, Forbidden, Invalid, NotFound
from dropyard.web.ui import labels, queries
from dropyard.web.ui.security import CSRF_FIELD, Cookies, Sealer, Session, add_security_headers

TEMPLATES = FilePath(__file__).parent / "templates"
STATIC = FilePath(__file__).parent / "static"
EDIT_ROLE = "admin"  # every change the services offer needs it


class SignInRequired(Exception):
    """No signed-in user: the answer is a redirect to the sign-in page."""

    def __init__(self, next_path: str | None) -> None:
        super().__init__("sign in first")
        self.next_path = next_path


class CsrfRefused(Exception):
    """A POST without this session's CSRF token: refused with 403, nothing done."""


@dataclass(frozen=True)
class Visitor:
    """The signed-in user of a request, and the actor every service call carries."""

    user: queries.SignedInUser
    actor: Actor
    session: Session

    @property
    def account_id(self) -> int:
        return self.user.account_id

    @property
    def can_edit(self) -> bool:
        return self.user.role == EDIT_ROLE

    @property
    def tz(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.user.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")


def safe_next(value: object) -> str | None:
    """A path on this site to go to after sign-in; anything else (another host) is None."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 32 for c in value) or len(value) > 500:
        return None
    return value


class Console:
    """What every page needs: the services, the sealer and cookies, the templates."""

    def __init__(self, dropyard: Dropyard, *, https: bool) -> None:
        settings = dropyard.settings
        key = load_or_create_master_key(settings.keys_dir / "master.key", settings.master_key)
        self.dropyard = dropyard
        self.sealer = Sealer(key)
        self.cookies = Cookies(self.sealer, https=https)
        self.templates = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            CSRF_FIELD=CSRF_FIELD,
            field_id=field_id,
            data_type_label=labels.data_type_label,
            direction_label=labels.direction_label,
            method_label=labels.method_label,
            methodology_label=labels.methodology_label,
            kind_label=labels.SHORT_KINDS.get,
            asset_version=asset_version(),
        )

    # -- the session of a request -------------------------------------------------------

    def session(self, request: Request) -> Session:
        """The request's session; a new anonymous one (sent with the answer) if none."""
        current = getattr(request.state, "ui_session", None)
        if isinstance(current, Session):
            return current
        found = self.cookies.session(request)
        if found is None:
            found = Session.new()
            request.state.ui_session_new = True
        request.state.ui_session = found
        return found

    def replace_session(self, request: Request, session: Session) -> None:
        """Sign in or out: a new session id and CSRF token, so none survives the change."""
        request.state.ui_session = session
        request.state.ui_session_new = True
        request.state.ui_visitor = None

    def visitor(self, request: Request) -> Visitor | None:
        """The signed-in user, looked up afresh (a disabled user is signed out)."""
        session = self.session(request)
        if session.email is None:
            return None
        cached = getattr(request.state, "ui_visitor", None)
        if isinstance(cached, Visitor):
            return cached
        user = queries.signed_in_user(self.dropyard.sessions, session.email)
        if user is None:
            return None
        address = request.client.host if request.client else "unknown"
        actor = Actor(
            kind="user",
            name=user.email,
            account_id=user.account_id,
            role=user.role,
            source=f"web {address}",
        )
        found = Visitor(user=user, actor=actor, session=session)
        request.state.ui_visitor = found
        return found

    # -- one-time notices ---------------------------------------------------------------

    def leave(self, request: Request, *, notice: str | None = None, **secret: Any) -> None:
        """A notice (and maybe a secret) for the next page only."""
        request.state.ui_flash_out = {"notice": notice, **secret}

    def take(self, request: Request, *, target: str | None = None) -> dict[str, Any] | None:
        """The notice left by the previous answer, removed with this answer. A secret is
        taken only by the page it was left for (`target`)."""
        flash = self.cookies.flash(request, self.session(request))
        if flash is None or flash.get("target") != target:
            return None
        request.state.ui_flash_taken = True
        return flash

    # -- answers ------------------------------------------------------------------------

    def render(
        self, request: Request, template: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        visitor = context.pop("visitor", None) or getattr(request.state, "ui_visitor", None)
        session = self.session(request)
        notice = context.pop("notice", None)
        if notice is None:
            flash = self.take(request)
            notice = flash.get("notice") if flash else None
        tz = visitor.tz if isinstance(visitor, Visitor) else ZoneInfo("UTC")
        context["errors"] = FieldErrors(context.get("errors") or {})
        page = self.templates.get_template(template).render(
            visitor=visitor,
            csrf_token=session.csrf,
            notice=notice,
            path=request.url.path,
            when=lambda moment: when(moment, tz),
            **context,
        )
        return HTMLResponse(page, status_code=status)

    def error_page(self, request: Request, status: int, title: str, message: str) -> HTMLResponse:
        return self.render(
            request, "error.html", status=status, title=title, message=message, notice=""
        )

    def for_error(self, request: Request, exc: DropyardError) -> HTMLResponse:
        if isinstance(exc, NotFound):
            return self.not_found(request)
        if isinstance(exc, Forbidden):
            return self.error_page(request, 403, "Not allowed", exc.message)
        if isinstance(exc, Invalid):
            return self.error_page(request, 422, "Not valid", exc.message)
        if isinstance(exc, Conflict):
            return self.error_page(request, 409, "Not possible now", exc.message)
        return self.error_page(request, 400, "Something went wrong", exc.message)

    def not_found(self, request: Request) -> HTMLResponse:
        return self.error_page(
            request, 404, "Not found", "There is nothing here, or it is not yours to see."
        )

    def finish(self, request: Request, response: Response) -> Response:
        """Write what the request changed in the browser's keeping; add the headers."""
        state = request.state
        session = getattr(state, "ui_session", None)
        if getattr(state, "ui_session_new", False) and isinstance(session, Session):
            self.cookies.set_session(request, response, session)
        flash_out = getattr(state, "ui_flash_out", None)
        if isinstance(flash_out, dict) and isinstance(session, Session):
            self.cookies.set_flash(request, response, session, flash_out)
        elif getattr(state, "ui_flash_taken", False):
            self.cookies.clear_flash(request, response)
        add_security_headers(response)
        return response


class FieldErrors(dict[str, str]):
    """Errors by field; a field without one reads as "" (templates ask for every field)."""

    def __missing__(self, key: str) -> str:
        return ""


def asset_version() -> str:
    """A digest of the static files: their URLs change when they do, so browsers may
    keep them without asking again."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def field_id(name: str) -> str:
    """The HTML id of a form field: `details.host` -> `f-details-host`."""
    return "f-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def when(moment: datetime | None, tz: ZoneInfo) -> str:
    if moment is None:
        return "never"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or "")


def redirect(path: str) -> RedirectResponse:
    """After a POST: see the result with a GET (reloading it repeats nothing)."""
    return RedirectResponse(path, status_code=303)


def sign_in_url(next_path: str | None) -> str:
    return "/signin" + (f"?next={quote(next_path, safe='/')}" if next_path else "")


class ConsoleRoute(APIRoute):
    """A console page: errors become pages, cookies and headers are written."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handle(request: Request) -> Response:
            console = console_of(request)
            response: Response
            try:
                response = await inner(request)
            except SignInRequired as exc:
                response = RedirectResponse(sign_in_url(exc.next_path), status_code=303)
            except CsrfRefused:
                response = console.error_page(
                    request,
                    403,
                    "Form refused",
                    "This form was not sent from this session (it may have been open too "
                    "long, or come from another site). Nothing was changed; please try again.",
                )
            except RequestValidationError:
                # A path like /connections/abc: nothing there.
                response = console.not_found(request)
            except DropyardError as exc:
                response = console.for_error(request, exc)
            return console.finish(request, response)

        return handle


def make_router() -> APIRouter:
    return APIRouter(route_class=ConsoleRoute)


# -- dependencies -----------------------------------------------------------------------


def console_of(request: Request) -> Console:
    return cast(Console, request.app.state.ui_console)


def signed_in(request: Request) -> Visitor:
    found = console_of(request).visitor(request)
    if found is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(safe_next(path) if request.method == "GET" else None)
    return found


def admin(who: Annotated[Visitor, Depends(signed_in)]) -> Visitor:
    """Pages that only lead to a change are refused to other roles at once."""
    who.actor.require_role(EDIT_ROLE)
    return who


async def posted(request: Request) -> FormData:
    """The form of a POST, once its CSRF token is this session's."""
    form = await request.form()
    session = console_of(request).session(request)
    if not session.csrf_matches(form.get(CSRF_FIELD)):
        raise CsrfRefused()
    return form


ConsoleDep = Annotated[Console, Depends(console_of)]
# A row id in a path; anything else (text, 0, beyond the column) is a 404 page.
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
SignedIn = Annotated[Visitor, Depends(signed_in)]
Admin = Annotated[Visitor, Depends(admin)]
Posted = Annotated[FormData, Depends(posted)]


def text(form: FormData, name: str) -> str:
    """A text field of a form ('' when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def last(form: FormData, name: str) -> str | None:
    """The last value sent under `name` (a checkbox after its hidden 'false'), or None."""
    values = [v for v in form.getlist(name) if isinstance(v, str)]
    return values[-1] if values else None
