"""Error answers: their bodies, their declarations in the OpenAPI schema, and their handlers.

Every route declares each error status it can answer (`answers(...)`) with the body it sends,
so a client generated from the schema, and the schema fuzz in the tests, know them all.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.routing import Match, Mount
from starlette.types import Scope

from textbook_api.services.deployments import (
    DomainError,
    IllegalTransition,
    InvalidConfiguration,
    NotFound,
    PayloadTooLarge,
)


class ErrorOut(BaseModel):
    """An error: `detail` names the cause in one line."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """422: the request breaks the schema (`detail` lists each field at fault) or a rule of
    the audit trail (`detail` names it)."""

    detail: list[FieldError] | str


class ConflictDetail(BaseModel):
    message: str
    current: str
    allowed: list[str]


class ConflictOut(BaseModel):
    """409: the job's current state does not allow the transition; `allowed` lists those it does."""

    detail: ConflictDetail


_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "the body could not be read as JSON text"},
    401: {"model": ErrorOut, "description": "no bearer token", "headers": _WWW_AUTHENTICATE},
    403: {"model": ErrorOut, "description": "a wrong token, or no DEPLOY_API_TOKEN (writes off)"},
    404: {"model": ErrorOut, "description": "no such job"},
    409: {"model": ConflictOut, "description": "illegal state transition"},
    413: {"model": ErrorOut, "description": "data or settings over their size bound"},
    422: {"model": ValidationErrorOut, "description": "invalid request"},
    503: {"model": ErrorOut, "description": "not ready, or no usable index or embedder"},
}


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route that can answer these error statuses."""
    return {code: ERROR_RESPONSES[code] for code in codes}


_STATUS_OF: dict[type[DomainError], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    IllegalTransition: status.HTTP_409_CONFLICT,
    InvalidConfiguration: status.HTTP_422_UNPROCESSABLE_CONTENT,
    PayloadTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
}


def _domain_error(_request: Request, error: Exception) -> JSONResponse:
    code = next(
        (code for kind, code in _STATUS_OF.items() if isinstance(error, kind)),
        status.HTTP_400_BAD_REQUEST,
    )
    detail: object = str(error)
    if isinstance(error, IllegalTransition):
        detail = {"message": str(error), "current": error.current, "allowed": error.allowed}
    return JSONResponse({"detail": detail}, status_code=code)


# Asked of the router one by one: it knows which of them each path serves.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What the textbook site's mount (StaticFiles at `/`) serves at the paths the API does not.
_SITE_METHODS = ["GET", "HEAD"]


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves at this request's path."""
    routes = [route for route in app.router.routes if not isinstance(route, Mount)]
    methods = [
        method for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in routes)
    ]
    site = any(route.matches(scope)[0] == Match.FULL
               for route in app.router.routes if isinstance(route, Mount))
    return _SITE_METHODS if site and not methods else methods


def _method_not_allowed(request: Request, _error: Exception) -> JSONResponse:
    """Starlette's 405 names only the first route at the path in `Allow` (`GET` where `GET`
    and `POST` are both served, nothing useful where the site's mount caught the request):
    answer with every method the path serves instead."""
    allow = ", ".join(allowed_methods(request.app, request.scope))
    return JSONResponse(
        {"detail": "Method Not Allowed"},
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        headers={"Allow": allow},
    )


def _invalid_request(_request: Request, error: Exception) -> JSONResponse:
    """422 naming each field at fault and why. The rejected values are not echoed back (FastAPI
    does): one may be a number JSON cannot write (`NaN`, `1e400`), which made this a 500."""
    errors = cast(RequestValidationError, error).errors()
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)
