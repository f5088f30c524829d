"""The one place where daytwo errors become HTTP statuses and JSON error bodies.

Every error answer has the same body, described by :class:`ErrorBody`::

    {"error": {"code": "not_found", "message": "no run 'x'", "hint": "list runs ..."}}

A user's mistake (``UserError``) becomes a 4xx; a failing model or tool backend
a 502; a database that cannot be reached a 503. Anything else is a bug: a
500 with a generic message, never a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from daytwo import exceptions as exc
from daytwo.exceptions import NotAuthenticated

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "ErrorDetail",
    "error_response",
    "install_error_handlers",
    "status_of",
]

log = logging.getLogger("daytwo.server")


class ErrorDetail(BaseModel):
    """What went wrong and how to fix it."""

    code: str
    message: str
    hint: str | None = None


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


# Most specific first: the first matching class decides.
_STATUS: list[tuple[type[BaseException], int, str]] = [
    (NotAuthenticated, 401, "not_authenticated"),
    (exc.PermissionDenied, 403, "permission_denied"),
    (exc.NotFoundError, 404, "not_found"),
    (exc.ConflictError, 409, "conflict"),
    (exc.SchemaDefinitionError, 422, "invalid_schema"),
    (exc.ContractViolation, 422, "contract_violation"),
    (exc.ContextOverflow, 422, "context_overflow"),
    (exc.InputError, 400, "invalid_input"),
    (exc.ConfigError, 400, "invalid_config"),
    (exc.MissingDependency, 501, "missing_dependency"),
    (exc.DatabaseLocked, 503, "database_locked"),
    (exc.SchemaOutdated, 503, "schema_outdated"),
    (exc.StoreError, 503, "database_unavailable"),
    (exc.UserError, 400, "bad_request"),
    (exc.RateLimited, 429, "rate_limited"),
    (exc.BudgetExceeded, 409, "budget_exceeded"),
    (exc.IntegrityError, 409, "integrity_error"),
    (exc.DriftBlocked, 502, "drift_blocked"),
    (exc.ToolError, 502, "tool_error"),
    (exc.ModelError, 502, "model_error"),
]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": desc}
    for status, desc in [
        (400, "Malformed input"),
        (401, "Missing, unknown or revoked API key"),
        (403, "The key's role may not do this"),
        (404, "Not found (or another tenant's)"),
        (413, "Request body too large"),
        (415, "Wrong content type"),
        (422, "Request does not match the schema"),
    ]
}
"""Error answers every authenticated route may give (for the OpenAPI document)."""


def status_of(error: BaseException) -> tuple[int, str]:
    """The HTTP status and error code of a daytwo error."""
    for cls, status, code in _STATUS:
        if isinstance(error, cls):
            return status, code
    return 500, "internal_error"


def error_response(
    status: int, code: str, message: str, hint: str | None = None, **headers: str
) -> JSONResponse:
    """A JSON error answer in the common shape."""
    body = ErrorBody(error=ErrorDetail(code=code, message=message, hint=hint))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers or None)


async def _daytwo_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, exc.DaytwoError)
    status, code = status_of(error)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, exc.RateLimited) and error.retry_after is not None:
        headers["Retry-After"] = str(int(error.retry_after + 0.999))
    if status >= 500:
        # The traceback names the statement or backend call that failed (server log only).
        log.warning("%s %s: %s", request.method, request.url.path, error, exc_info=error)
    return error_response(status, code, error.message, error.hint, **headers)


def _first_validation_message(errors: list[Any]) -> tuple[str, str, str]:
    err = errors[0] if errors else {}
    loc = [str(p) for p in err.get("loc", ())]
    where = ".".join(loc[1:] if loc and loc[0] in {"body", "query", "path", "header"} else loc)
    kind = loc[0] if loc else "request"
    return kind, where, str(err.get("msg", "invalid request"))


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            400, "malformed_json", "the request body is not valid JSON", "send a JSON document"
        )
    kind, where, msg = _first_validation_message(errors)
    target = f"{kind} field {where!r}" if where else kind
    return error_response(
        422,
        "validation_error",
        f"{target}: {msg}",
        "see the OpenAPI document at /openapi.json for the expected shape",
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
    if error.status_code == 404 and message == "Not Found":
        message = f"no route {request.url.path}"
    headers = dict(error.headers or {})
    return error_response(error.status_code, code, message, None, **headers)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error_response(
        500,
        "internal_error",
        "internal error",
        "this is a bug in daytwo; the server log has the details",
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(exc.DaytwoError, _daytwo_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
