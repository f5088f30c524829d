"""Browser-facing defences: CSRF, security headers, login throttling.

:class:`WebGuard` is ASGI middleware over the whole app, so every route, including
routers added later, is covered without opting in:

- **CSRF.** A state-changing request (POST, PUT, PATCH, DELETE) that a browser could
  send on its own, i.e. one without an API key header, must come from this origin
  (``Origin``, else ``Referer``, names this host) and, when it carries the session
  cookie, must carry the session's CSRF token, as the ``X-CSRF-Token`` header (the
  dashboard's script sends it) or the ``csrf_token`` field of a form. This holds for
  bodyless POSTs too (cancel, resume, cutover, rollback). Requests with
  ``Authorization``/``X-API-Key`` are authenticated by that key, never by the
  cookie, and need no token.
- **Headers** on every answer: a Content-Security-Policy without ``'unsafe-inline'``
  (scripts and styles only from ``/static``), ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``. A route
  that sets its own CSP (the ReDoc page, with a nonce) keeps it.

The CSRF token is derived from the session token (HMAC-SHA256), so it changes with
each login, needs no storage and cannot be computed without the HttpOnly cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LoginThrottle",
    "WebGuard",
    "csp_with_style_hashes",
    "csrf_token",
]

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_KEY_HEADERS = frozenset({b"authorization", b"x-api-key"})
_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def csp_with_style_hashes(html: str) -> str:
    """The CSP, also allowing exactly the ``<style>`` blocks of ``html`` (by SHA-256).

    For self-contained documents we serve as they are (the offline eval report).
    """
    import base64
    import re

    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in re.findall(r"<style>(.*?)</style>", html, flags=re.DOTALL)
    ]
    if not hashes:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace(
        "style-src 'self'", "style-src 'self' " + " ".join(hashes)
    )


def csrf_token(session_token: str) -> str:
    """The CSRF token of a dashboard session (empty for no session)."""
    if not session_token:
        return ""
    return hmac.new(session_token.encode(), b"daytwo-csrf", hashlib.sha256).hexdigest()


def _same_origin(source: str, host: str) -> bool:
    try:
        parts = urlsplit(source)
    except ValueError:
        return False
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


class WebGuard:
    """CSRF checks and security headers for every route (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, session_cookie: str) -> None:
        self.app = app
        self.session_cookie = session_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if scope["method"] in _UNSAFE:
            problem, receive = await self._csrf_problem(scope, receive)
            if problem is not None:
                await _forbidden(send_with_headers, problem)
                return
        await self.app(scope, receive, send_with_headers)

    async def _csrf_problem(self, scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
        # Most unsafe requests carry a key: answer them from the raw headers, without
        # decoding every header (the first occurrence of each name counts, as below).
        seen: set[bytes] = set()
        for k, v in scope["headers"]:
            name = k.lower()
            if name in _KEY_HEADERS and name not in seen:
                if v:
                    return None, receive  # authenticated by the key, not by the cookie
                seen.add(name)
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        if headers.get("authorization") or headers.get("x-api-key"):
            return None, receive  # authenticated by the key, not by the cookie
        host = headers.get("host", "")
        source = headers.get("origin") or headers.get("referer")
        if source is not None and source != "null" and not _same_origin(source, host):
            return f"cross-origin request from {source!r} refused", receive
        if source == "null":
            return "a request from an opaque origin is refused", receive
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header: no session
            return None, receive
        morsel = cookie.get(self.session_cookie)
        if morsel is None or not morsel.value:
            return None, receive
        expected = csrf_token(morsel.value)
        given = headers.get(CSRF_HEADER, "")
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if not given and ctype == "application/x-www-form-urlencoded":
            body, receive = await _read_body(receive)
            values = parse_qs(body.decode("latin-1"), max_num_fields=200).get(CSRF_FIELD, [""])
            given = values[0]
        if not given or not hmac.compare_digest(given, expected):
            return "the CSRF token is missing or wrong", receive
        return None, receive


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (already bounded by RequestGuard), and a receive that replays it."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _forbidden(send: Send, problem: str) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "csrf_refused",
                "message": problem,
                "hint": "send requests from the dashboard's own pages, or authenticate "
                "with an API key (Authorization: Bearer ...)",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class LoginThrottle:
    """Failed dashboard logins per client address (``limits`` moving window)."""

    def __init__(self, limit: str = "10/minute", storage_uri: str = "memory://") -> None:
        options: dict[str, Any] = {}
        if storage_uri.startswith(("redis://", "rediss://")):
            options["key_prefix"] = "daytwo-login"
        self.item: RateLimitItem = parse(limit)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri, **options))

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again; None when it may now."""
        if self._limiter.test(self.item, "login", client):
            return None
        stats = self._limiter.get_window_stats(self.item, "login", client)
        return max(1, int(stats.reset_time - time.time()) + 1)

    def failed(self, client: str) -> None:
        """Count one failed login of ``client``."""
        self._limiter.hit(self.item, "login", client)
