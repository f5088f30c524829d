"""ASGI middleware: body size limit and content-type check for the JSON API.

Both answer before the application sees the request, with the common JSON
error body (see ``errors.py``): 413 for a body over the limit, 415 for a body
on ``/api/`` that is not JSON (multipart is allowed on upload routes).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_MAX_BODY_BYTES", "RequestGuard"]

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""Default largest request body (1 MiB); uploads get ``max_upload_bytes``."""

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _error(status: int, code: str, message: str, hint: str) -> tuple[int, bytes]:
    body = {"error": {"code": code, "message": message, "hint": hint}}
    return status, json.dumps(body).encode()


class RequestGuard:
    """Refuse oversized bodies (413) and non-JSON bodies on the JSON API (415)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_upload_bytes: int = 32 << 20,
        api_prefix: str = "/api/",
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        is_upload = path.endswith("/upload") and ctype == "multipart/form-data"
        limit = self.max_upload_bytes if is_upload else self.max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._answer(send, *_error(400, "bad_request", "bad Content-Length", ""))
                return
            if declared > limit:
                await self._answer(send, *self._too_large(limit))
                return
        # Read the whole (bounded) body first, so a lying or absent Content-Length
        # cannot make the application buffer more than the limit.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._answer(send, *self._too_large(limit))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if (
            body
            and path.startswith(self.api_prefix)
            and ctype != "application/json"
            and not is_upload
        ):
            await self._answer(
                send,
                *_error(
                    415,
                    "unsupported_media_type",
                    f"content type {ctype or '(none)'!r} is not accepted here",
                    "send the body as JSON with Content-Type: application/json",
                ),
            )
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    def _too_large(limit: int) -> tuple[int, bytes]:
        return _error(
            413,
            "body_too_large",
            f"the request body is larger than {limit} bytes",
            "send a smaller body (split the batch)",
        )

    @staticmethod
    async def _answer(send: Send, status: int, body: bytes) -> None:
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
