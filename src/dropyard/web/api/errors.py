"""Errors on the HTTP wire: the one place a `DropyardError` becomes a status code.

Every error answer is an `ErrorOut` document. Request validation by FastAPI is reshaped
into the same 422 document as a service's `Invalid`, without echoing the input (it may
be a password). An unexpected exception answers 500 with nothing of its text; the
server keeps the traceback in its own log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from dropyard.errors import (
    Conflict,
    DropyardError,
    Forbidden,
    Invalid,
    NotFound,
    QuotaExceeded,
    Transient,
    Unauthenticated,
)
from dropyard.web.api.schemas import ErrorOut

RETRY_AFTER_SECONDS = 30
_STATUS: tuple[tuple[type[DropyardError], int], ...] = (
    (Invalid, 422),
    (NotFound, 404),
    (Forbidden, 403),
    (Unauthenticated, 401),
    (Conflict, 409),
    (QuotaExceeded, 413),
    (Transient, 503),
)
_HTTP_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "not_allowed"}
_PREFIXES = ("Value error, ", "Assertion failed, ")


def status_of(exc: DropyardError) -> int:
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 400)


def _answer(status: int, body: ErrorOut, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def dropyard_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, DropyardError):
        return unexpected_error(request, exc)
    errors = exc.errors if isinstance(exc, Invalid) else {}
    if not errors and exc.field is not None:
        errors = {exc.field: exc.message}
    # An invalid input's message names each field at fault, as `errors` keys them.
    message = _joined(errors) if isinstance(exc, Invalid) and errors else exc.message
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="dropyard"'
    if isinstance(exc, Transient):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    body = ErrorOut(error=exc.code, message=message, errors=errors)
    return _answer(status_of(exc), body, headers)


def _joined(errors: dict[str, str]) -> str:
    return "; ".join(f"{name}: {text}" for name, text in errors.items())


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _text(message: str) -> str:
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message


def validation_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):
        return unexpected_error(request, exc)
    errors: dict[str, str] = {}
    for item in exc.errors():
        errors.setdefault(_field(item.get("loc", ())), _text(str(item.get("msg", "invalid"))))
    return _answer(422, ErrorOut(error=Invalid.code, message=_joined(errors), errors=errors))


def http_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, HTTPException):
        return unexpected_error(request, exc)
    code = _HTTP_CODES.get(exc.status_code, "error")
    body = ErrorOut(error=code, message=str(exc.detail))
    return _answer(exc.status_code, body, dict(exc.headers or {}))


def unexpected_error(_request: Request, _exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, so the server's log has the traceback.
    return _answer(500, ErrorOut(error="internal", message="internal error"))


def install(api: FastAPI) -> None:
    api.add_exception_handler(DropyardError, dropyard_error)
    api.add_exception_handler(RequestValidationError, validation_error)
    api.add_exception_handler(HTTPException, http_error)
    api.add_exception_handler(Exception, unexpected_error)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (401, "No token, or a token that is unknown or revoked"),
        (403, "The token's role may not do this"),
        (404, "Not found in the token's account"),
        (409, "The change conflicts with the current state"),
        (422, "Input that breaks a rule; `errors` names each field"),
        (503, "Try again after Retry-After seconds"),
    )
}
