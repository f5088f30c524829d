"""ASGI middleware: body size limit and content-type check for the JSON API.

Both answer before the application sees the request, with the common JSON
error body (see ``errors.py``): 413 for a body over the limit, 415 for a body
on ``/api/`` that is not JSON (multipart is allowed on upload routes). NDJSON
bodies of the bulk routes (``/api/.../bulk``) are the exception: they stream
through unbuffered (the route reads them line by line), counted against
``max_stream_bytes`` as they arrive (past it the route fails with a 400 naming
the limit; the lines written before it keep their results).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_MAX_BODY_BYTES", "PathLimit", "RequestGuard"]

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""Default largest request body (1 MiB); uploads get ``max_upload_bytes``."""

_BODY_METHODS = {"POST", "PUT", "PATCH"}


def _error(status: int, code: str, message: str, hint: str) -> tuple[int, bytes]:
    body = {"error": {"code": code, "message": message, "hint": hint}}
    return status, json.dumps(body).encode()


@dataclass(frozen=True)
class PathLimit:
    """Another body limit for one path, and how to answer 413 there.

    ``answer(content_type)`` returns the body and its content type (a protocol with
    its own error shape, such as OTLP's, answers in it).
    """

    limit: int
    answer: Callable[[str], tuple[bytes, str]] | None = None


class RequestGuard:
    """Refuse oversized bodies (413) and non-JSON bodies on the JSON API (415)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_upload_bytes: int = 32 << 20,
        api_prefix: str = "/api/",
        path_limits: Mapping[str, PathLimit] | None = None,
        max_stream_bytes: int = 1 << 30,
    ) -> None:
        self.max_stream_bytes = max_stream_bytes
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.api_prefix = api_prefix
        self.path_limits = dict(path_limits or {})

    def _counted(self, receive: Receive) -> Receive:
        """``receive`` that fails once more than ``max_stream_bytes`` arrived."""
        size = 0
        limit = self.max_stream_bytes

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > limit:
                from daytwo.exceptions import InputError

                raise InputError(
                    f"the NDJSON body is larger than {limit} bytes",
                    hint="send the rest in another request",
                )
            return message

        return counted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        # Only two headers matter here (the last occurrence of each counts).
        raw_type = b""
        length: str | None = None
        for k, v in scope["headers"]:
            name = k.lower()
            if name == b"content-type":
                raw_type = v
            elif name == b"content-length":
                length = v.decode("latin-1")
        path: str = scope["path"]
        ctype = raw_type.decode("latin-1").split(";")[0].strip().lower()
        is_upload = path.endswith("/upload") and ctype == "multipart/form-data"
        bulk = path.startswith(self.api_prefix) and path.endswith("/bulk")
        if bulk and ctype == "application/x-ndjson":
            await self.app(scope, self._counted(receive), send)
            return
        limit = self.max_upload_bytes if is_upload else self.max_body_bytes
        special = self.path_limits.get(path)
        if special is not None:
            limit = special.limit
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await self._answer(send, *_error(400, "bad_request", "bad Content-Length", ""))
                return
            if declared > limit:
                await self._answer(send, *self._too_large(limit, special, ctype))
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
                await self._answer(send, *self._too_large(limit, special, ctype))
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
    def _too_large(
        limit: int, special: PathLimit | None = None, ctype: str = ""
    ) -> tuple[int, bytes] | tuple[int, bytes, str]:
        if special is not None and special.answer is not None:
            body, answer_type = special.answer(ctype)
            return 413, body, answer_type
        return _error(
            413,
            "body_too_large",
            f"the request body is larger than {limit} bytes",
            "send a smaller body (split the batch)",
        )

    @staticmethod
    async def _answer(
        send: Send, status: int, body: bytes, content_type: str = "application/json"
    ) -> None:
        headers: list[Any] = [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
