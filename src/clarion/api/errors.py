"""Turning errors into HTTP answers, in one place.

Every error body has the same shape: ``{"error": code, "message": text, "errors": [{"field",
"reason"}]}``. Unexpected exceptions are logged with their traceback and answered with a
plain 500 — a stack trace never reaches a client.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from clarion.errors import (
    BackendError,
    ClarionError,
    ConflictError,
    FieldProblem,
    ForbiddenError,
    InputError,
    NotFoundError,
    RateLimitedError,
    UnauthenticatedError,
)

log = logging.getLogger(__name__)

_STATUS: dict[type[ClarionError], tuple[int, str]] = {
    InputError: (400, "invalid_request"),
    UnauthenticatedError: (401, "unauthenticated"),
    ForbiddenError: (403, "forbidden"),
    NotFoundError: (404, "not_found"),
    ConflictError: (409, "conflict"),
    RateLimitedError: (429, "rate_limited"),
    BackendError: (503, "unavailable"),
}

_REASONS = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "json_invalid": "not valid JSON",
}


def field_path(loc: Sequence[Any], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def problems_from_pydantic(errors: Iterable[Any], prefix: str = "") -> list[FieldProblem]:
    problems = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        reason = _REASONS.get(error.get("type", ""), error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            reason = f"not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
        problems.append(FieldProblem(field_path(loc, prefix), reason))
    return problems


def error_body(code: str, message: str, problems: Iterable[FieldProblem] = ()) -> dict[str, Any]:
    return {
        "error": code,
        "message": message,
        "errors": [{"field": p.field, "reason": p.reason} for p in problems],
    }


def status_of(exc: ClarionError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500, "internal"


def clarion_response(exc: ClarionError) -> JSONResponse:
    status, code = status_of(exc)
    problems = exc.problems if isinstance(exc, InputError) else ()
    message = "the request has invalid fields" if problems else str(exc)
    headers = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if isinstance(exc, UnauthenticatedError):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(code, message, problems), status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = problems_from_pydantic(exc.errors())
        return JSONResponse(
            error_body("invalid_request", "the request has invalid fields", problems), 400
        )

    @app.exception_handler(ClarionError)
    async def _clarion(_: Request, exc: ClarionError) -> JSONResponse:
        return clarion_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal", "internal error; see the server log"), 500)
