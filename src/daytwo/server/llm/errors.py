"""Gateway errors in each vendor's own shape, so the official SDKs raise their usual types.

OpenAI: ``{"error": {"message", "type", "param", "code"}}``; Anthropic:
``{"type": "error", "error": {"type", "message"}}``. The status decides the SDK's
exception (401 ``AuthenticationError``, 404 ``NotFoundError``, 429
``RateLimitError``, 400 ``BadRequestError``...). A spent budget is a 429 with
``x-should-retry: false`` (retrying cannot help before the day ends) and
``Retry-After`` until then; a rate limit is a 429 the SDKs retry after
``Retry-After``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import orjson
from fastapi.responses import Response

from daytwo import exceptions as exc
from daytwo.exceptions import NotAuthenticated

__all__ = ["GATEWAY_RESPONSES", "GatewayError", "error_response", "gateway_error"]

log = logging.getLogger("daytwo.server.llm")

Wire = Literal["openai", "anthropic"]


_ERROR_SCHEMA = {
    "type": "object",
    "description": "OpenAI: {error: {message, type, param, code}}; Anthropic: "
    "{type: 'error', error: {type, message}}",
    "additionalProperties": True,
}
GATEWAY_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"description": desc, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for status, desc in [
        (400, "Malformed request (the field is named), or the prompt does not fit the window"),
        (401, "Missing, unknown or revoked API key"),
        (403, "The key may not do this"),
        (404, "Unknown model (the available names are listed)"),
        (413, "Request body too large"),
        (429, "Budget spent (no retry before the reset) or rate limited (Retry-After)"),
        (500, "A bug in the gateway"),
        (502, "The upstream model failed"),
        (503, "The model is not configured on this server"),
    ]
}
"""Error answers of the gateway's routes (for the OpenAPI document)."""


@dataclass(frozen=True)
class GatewayError:
    """What the gateway answers for one error."""

    status: int
    kind: str  # OpenAI error type
    code: str | None
    message: str
    param: str | None = None
    retry_after: float | None = None
    retry: bool = True


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def _message(error: exc.DaytwoError) -> str:
    return f"{error.message}. {error.hint}" if error.hint else error.message


def gateway_error(error: BaseException) -> GatewayError:
    """The status, type and code of ``error`` on the gateway's wire."""
    if isinstance(error, exc.DaytwoError):
        message = _message(error)
        param = error.context.get("param")
        if isinstance(error, NotAuthenticated):
            return GatewayError(401, "invalid_request_error", "invalid_api_key", message)
        if isinstance(error, exc.PermissionDenied):
            return GatewayError(403, "permission_error", "permission_denied", message)
        if isinstance(error, exc.NotFoundError):
            return GatewayError(
                404, "invalid_request_error", "model_not_found", message, param or "model"
            )
        if isinstance(error, exc.BudgetExceeded):
            return GatewayError(
                429,
                "insufficient_quota",
                "insufficient_quota",
                message,
                retry_after=error.context.get("retry_after"),
                retry=False,
            )
        if isinstance(error, exc.ContextOverflow):
            return GatewayError(
                400, "invalid_request_error", "context_length_exceeded", message, "messages"
            )
        if isinstance(error, exc.RateLimited):
            return GatewayError(
                429, "rate_limit_error", "rate_limit_exceeded", message, None, error.retry_after
            )
        if isinstance(error, exc.ConfigError):
            # The server's configuration (a vendor key, a profile) is wrong: not the caller's.
            log.warning("gateway configuration error: %s", error)
            return GatewayError(503, "server_error", "model_unavailable", message, retry=False)
        if isinstance(error, exc.UserError):
            return GatewayError(400, "invalid_request_error", "invalid_request", message, param)
        if isinstance(error, exc.StructuredOutputError):
            return GatewayError(502, "server_error", "structured_output_failed", message)
        if isinstance(error, exc.ModelError):
            return GatewayError(502, "server_error", "upstream_error", message)
    log.exception("internal error in the model gateway", exc_info=error)
    return GatewayError(500, "server_error", "internal_error", "internal error in the gateway")


def error_response(error: BaseException, wire: Wire = "openai") -> Response:
    """The vendor-shaped answer for ``error``."""
    ge = gateway_error(error)
    headers: dict[str, str] = {}
    if ge.retry_after is not None:
        headers["retry-after"] = str(max(1, int(ge.retry_after + 0.999)))
    if not ge.retry:
        headers["x-should-retry"] = "false"
    if ge.status == 401:
        headers["www-authenticate"] = "Bearer"
    if wire == "anthropic":
        kind = _ANTHROPIC_TYPES.get(ge.status, "api_error")
        if ge.status == 503:
            kind = "overloaded_error" if ge.retry else "api_error"
        body = {"type": "error", "error": {"type": kind, "message": ge.message}}
    else:
        body = {
            "error": {"message": ge.message, "type": ge.kind, "param": ge.param, "code": ge.code}
        }
    return Response(
        orjson.dumps(body), status_code=ge.status, media_type="application/json", headers=headers
    )
