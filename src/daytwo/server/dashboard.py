"""The dashboard shell: login with a key (cookie session), logout, overview, page rendering.

Pages are server-rendered with Jinja2; ``static/app.js`` adds a small vanilla-JS layer
(JSON forms, API buttons, server-sent events). Every asset is served from ``/static``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from daytwo._version import __version__
from daytwo.exceptions import DaytwoError, NotAuthenticated, PermissionDenied
from daytwo.server.auth import SESSION_TTL, KeyStore, Principal
from daytwo.server.deps import SESSION_COOKIE
from daytwo.server.errors import status_of
from daytwo.server.events import audit_anonymous, audit_event
from daytwo.server.exports import export_table, utc_time
from daytwo.server.websec import LoginThrottle, csrf_token

__all__ = ["NAV", "page", "render", "router", "templates"]

templates = Jinja2Templates(directory=str(resources.files("daytwo.server") / "templates"))
templates.env.filters["utc"] = utc_time
router = APIRouter(include_in_schema=False)

NAV: list[tuple[str, str]] = [("/", "Overview")]
"""Navigation entries (href, label); page modules append theirs."""


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    """Render a page with the common context (principal, navigation, version).

    With ``?export=TABLE_ID&format=csv|json`` the answer is that table of the page
    (server/exports.py): same handler, same filters, same tenant.
    """
    ctx = {
        "principal": principal,
        "nav": NAV,
        "active": context.pop("active", request.url.path),
        "version": __version__,
        "csrf": csrf_token(request.cookies.get(SESSION_COOKIE, "")),
        **context,
    }
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    table = request.query_params.get("export")
    if table and principal is not None and status_code == 200:
        slug = request.url.path.strip("/").replace("/", "-") or "overview"
        fmt = request.query_params.get("format", "csv")
        return export_table(bytes(response.body).decode(), table, fmt, slug)
    return response


def _principal_of(request: Request) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    keys: KeyStore = request.app.state.keys
    try:
        return keys.session_principal(token)
    except NotAuthenticated:
        return None


PageHandler = Callable[..., Response]


def page(
    path: str, *, title: str, nav: str | None = None, role: str = "viewer"
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register a dashboard page; the handler gets ``(request, principal, **path params)``.

    Anonymous visitors are sent to /login; daytwo errors become an error page with
    the status the API would give.
    """

    def decorate(handler: Callable[..., Response]) -> Callable[..., Response]:
        def endpoint(request: Request) -> Response:
            principal = _principal_of(request)
            if principal is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            try:
                principal.require(role)  # type: ignore[arg-type]
                return handler(request, principal, **request.path_params)
            except DaytwoError as exc:
                status, _ = status_of(exc)
                if status >= 500 and not isinstance(exc, PermissionDenied):
                    status = 503 if status == 503 else 502
                return render(
                    request,
                    "message.html",
                    principal,
                    status_code=status,
                    title=title,
                    heading=title,
                    message=exc.message,
                    hint=exc.hint,
                )

        endpoint.__name__ = handler.__name__
        router.add_api_route(path, endpoint, methods=["GET"], response_class=HTMLResponse)
        if nav is not None:
            NAV.append((path, nav))
        return handler

    return decorate


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", None, title="Log in", next=_safe_next(next))


def _safe_next(target: str) -> str:
    """Only local paths: never redirect to another site after login."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    key: Annotated[str, Form(max_length=300)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    keys: KeyStore = request.app.state.keys
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(client)
    if wait is not None:
        refused = render(
            request,
            "login.html",
            None,
            status_code=429,
            title="Log in",
            next=_safe_next(next),
            error=f"too many failed logins from this address; try again in {wait} s",
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    try:
        principal, token = keys.open_session(key)
    except NotAuthenticated as exc:
        throttle.failed(client)
        # The key id is the public part of a well-formed key; the secret never goes in.
        m = re.match(r"dt_([0-9a-f]{32})_", key.strip())
        key_id = m.group(1) if m else None
        audit_anonymous(request, "login.failure", key_id, {"reason": exc.message})
        return render(
            request,
            "login.html",
            None,
            status_code=401,
            title="Log in",
            next=_safe_next(next),
            error=exc.message,
        )
    audit_event(request, principal, "login.success", principal.key_id)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=int(SESSION_TTL.total_seconds()),
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        keys: KeyStore = request.app.state.keys
        keys.close_session(token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
