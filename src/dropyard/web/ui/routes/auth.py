"""Sign in and out. The gateway's defender guards the web sign-in as it guards SFTP and
FTP: a banned address is refused before any password is checked, a wrong password
scores against the address. An unknown email and a wrong password get the same answer."""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from dropyard.errors import Unauthenticated
from dropyard.web.ui.console import (
    ConsoleDep,
    Posted,
    make_router,
    redirect,
    safe_next,
    text,
)
from dropyard.web.ui.security import Session

router = make_router()
HOME = "/connections"
WRONG = "Wrong email or password."
BANNED = "Too many failed sign-ins from your address. Try again later."
_MAX_EMAIL = 254
_MAX_PASSWORD = 4096


@router.get("/")
def home(request: Request, console: ConsoleDep) -> Response:
    return redirect(HOME if console.visitor(request) else "/signin")


@router.get("/signin")
def sign_in_page(request: Request, console: ConsoleDep, next: str | None = None) -> Response:
    if console.visitor(request) is not None:
        return redirect(safe_next(next) or HOME)
    return console.render(request, "signin.html", email="", error=None, next=safe_next(next))


@router.post("/signin")
def sign_in(request: Request, console: ConsoleDep, form: Posted) -> Response:
    email = text(form, "email").strip()[:_MAX_EMAIL]
    password = text(form, "password")[:_MAX_PASSWORD]
    next_path = safe_next(text(form, "next"))
    address = request.client.host if request.client else "unknown"
    defender = console.dropyard.defender
    if defender.is_banned(address):
        return console.render(
            request, "signin.html", status=429, email=email, error=BANNED, next=next_path
        )
    try:
        actor = console.dropyard.accounts.authenticate_user(
            email=email, password=password, source=f"web {address}"
        )
    except Unauthenticated:
        banned = defender.failure(address)
        return console.render(
            request,
            "signin.html",
            status=429 if banned else 401,
            email=email,
            error=BANNED if banned else WRONG,
            next=next_path,
        )
    defender.success(address)
    console.replace_session(request, Session.new(email=actor.name))
    return redirect(next_path or HOME)


@router.get("/signout")
def sign_out_page(request: Request, console: ConsoleDep) -> Response:
    visitor = console.visitor(request)
    if visitor is None:
        return redirect("/signin")
    return console.render(request, "signout.html", visitor=visitor)


@router.post("/signout")
def sign_out(request: Request, console: ConsoleDep, form: Posted) -> Response:
    console.replace_session(request, Session.new())
    console.leave(request, notice="You are signed out.")
    return redirect("/signin")
