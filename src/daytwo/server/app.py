"""The FastAPI application factory: REST API, dashboard, and the MCP endpoint when present."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from daytwo._version import __version__
from daytwo.server.apidocs import install_api_docs
from daytwo.server.auth import KeyStore
from daytwo.server.deps import SESSION_COOKIE
from daytwo.server.errors import install_error_handlers
from daytwo.server.middleware import DEFAULT_MAX_BODY_BYTES, PathLimit, RequestGuard
from daytwo.server.websec import LoginThrottle, WebGuard
from daytwo.settings import Settings, load_settings
from daytwo.store import Store

__all__ = ["DaytwoAPI", "app_from_env", "create_app"]

_DESCRIPTION = """\
The daytwo service: agents and their runs, the tool gateway, the knowledge layer,
evals, costs and the audit log, for several tenants.

Authenticate with an API key (`daytwo keys create --role admin --tenant T`), sent as
`Authorization: Bearer dt_...` or `X-API-Key: dt_...`. Every error answer has the body
`{"error": {"code", "message", "hint"}}`.
"""


class DaytwoAPI(FastAPI):
    """FastAPI, with the model gateway's routes answered ahead of its own stack.

    A gateway call (``/v1/chat/completions``, ``/v1/messages``, ``/v1/embeddings``,
    ``GET /v1/models``) goes through the same guards as every request (body limit,
    CSRF, security headers: ``gateway_app``) and then straight to its endpoint:
    FastAPI's error and exception middleware, router matching and dependency
    solving do nothing for these endpoints (each parses, authenticates and answers
    its errors itself) yet cost a third of the server's own time per call.
    Anything else, a mounted root path included, takes the full stack.
    """

    gateway_app: ASGIApp | None = None
    gateway_routes: frozenset[tuple[str, str]] = frozenset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.gateway_app
        if (
            fast is not None
            and scope["type"] == "http"
            and not scope.get("root_path")
            and (scope["method"], scope["path"]) in self.gateway_routes
        ):
            scope["app"] = self
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    *,
    runtime: Any = None,
    with_runtime: bool = True,
    gateway: Any = None,
    with_gateway: bool = True,
    knowledge: Any = None,
    with_knowledge: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    check_schema: bool = True,
    freeze_heap: bool = False,
) -> DaytwoAPI:
    """Build the app over ``store`` (default: the store the settings point at).

    ``runtime`` is a :class:`daytwo.runtime.Runtime` not yet launched (default: one
    built from the settings by :func:`daytwo.server.services.build_runtime`); the app
    launches it at startup and shuts it down at shutdown. ``with_runtime=False`` serves
    without one (run routes answer 501). ``gateway`` (a :class:`daytwo.gateway.Gateway`)
    and ``knowledge`` (a :class:`daytwo.knowledge.service.KnowledgeBase`) likewise default
    to ones built from the settings; ``with_gateway``/``with_knowledge=False`` leave them
    out. The app closes what it built, and disposes the store only when it created it.
    ``freeze_heap`` (for a server process, not for tests building many apps) moves the
    objects alive at startup to the collector's permanent generation (``gc.freeze``).
    """
    settings = settings if settings is not None else load_settings()
    owns_store = store is None
    store = store if store is not None else Store.from_settings(settings)
    if check_schema:
        store.check_schema()

    from daytwo.server import services

    audit = services.audit_log(settings, store)
    owns_kb = knowledge is None and with_knowledge
    if owns_kb:
        knowledge = services.build_kb(settings, store)
    owns_gateway = gateway is None and with_gateway
    if owns_gateway:
        gateway = services.build_gateway(settings, store, audit)
    elif gateway is not None:
        services.scope_gateway(gateway, store, audit)
    if runtime is None and with_runtime:
        runtime = services.build_runtime(settings, store, audit, gateway, knowledge)
    mcp = services.mcp_app(gateway) if gateway is not None else None

    from daytwo.server.llm import ModelGateway
    from daytwo.server.llm import router as llm_router
    from daytwo.server.llm.api import FAST_ROUTES
    from daytwo.server.llm.api import dispatch as llm_dispatch

    model_gateway = ModelGateway(settings, store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Model-gateway calls and runs record spans: store them (idempotent).
        services.start_tracing(settings, store)
        if runtime is not None:
            # DBOS refuses its sync API inside an event loop: launch from a thread.
            await run_in_threadpool(runtime.launch)
        if freeze_heap:
            # Everything built so far (modules, the app, the store's engine) lives as
            # long as the server process: move it out of the collector's reach.
            # Otherwise each full collection, which a request allocating many objects
            # (an OTLP batch of 512 spans) triggers several times, walks the whole heap
            # again: a third of the ingest CPU, and jitter on every gateway call.
            gc.freeze()
        try:
            if mcp is not None:
                async with mcp.router.lifespan_context(mcp):
                    yield
            else:
                yield
        finally:
            if runtime is not None:
                await run_in_threadpool(runtime.shutdown)
            if owns_gateway:
                gateway.close()
            if owns_kb:
                knowledge.close()
            await run_in_threadpool(model_gateway.close)
            for close in app.state.on_shutdown:
                close()
            if owns_store:
                store.dispose()

    app = DaytwoAPI(
        title="daytwo",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        # The runtime and the layers record the spans that matter (runs, steps, model
        # and tool calls); one span per HTTP request in the system of record would cost
        # a write per request and bury them. OTLP users can wrap the app themselves.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        # Swagger UI and ReDoc from local files (apidocs.py), never from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.keys = KeyStore(store)
    app.state.runtime = runtime
    app.state.audit = audit
    app.state.gateway = gateway
    app.state.kb = knowledge
    app.state.model_gateway = model_gateway
    app.state.on_shutdown = []
    app.state.login_throttle = LoginThrottle(storage_uri=settings.redis_url or "memory://")
    install_error_handlers(app)

    from daytwo.server import dashboard
    from daytwo.server.routes import core

    # The model gateway (OpenAI-compatible + Anthropic Messages) at /v1/, first: every
    # request is matched against the routers in order, and its calls are the hot path.
    app.include_router(llm_router)
    app.include_router(core.public)
    app.include_router(core.api)
    for router in _layer_routers():
        app.include_router(router)
    app.include_router(dashboard.router)
    install_api_docs(app)
    static = resources.files("daytwo.server") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    if mcp is not None:
        # MCP Streamable HTTP at /mcp/ (the gateway's agent keys or a tenant's API keys as
        # Bearer tokens; either sees only its tenant's tools).
        app.mount("/mcp", mcp, name="mcp")
    from daytwo.server.routes import otlp

    # Outermost first: the body limit, then CSRF and the security headers (websec.py),
    # for every route and mount, including routers added later.
    guard_kwargs: dict[str, Any] = {
        "max_body_bytes": max_body_bytes,
        "path_limits": {otlp.OTLP_PATH: PathLimit(otlp.MAX_OTLP_BYTES, otlp.too_large_body)},
    }
    app.add_middleware(WebGuard, session_cookie=SESSION_COOKIE)
    app.add_middleware(RequestGuard, **guard_kwargs)
    # The same guards, in the same order, in front of the gateway's direct dispatch.
    app.gateway_routes = frozenset(FAST_ROUTES)
    app.gateway_app = RequestGuard(
        WebGuard(llm_dispatch, session_cookie=SESSION_COOKIE), **guard_kwargs
    )
    return app


def _layer_routers() -> list[APIRouter]:
    """Routers of the layers (each module registers the routes of one layer)."""
    from daytwo.server import evalrun, explorer, overview, pages  # noqa: F401  (dashboard pages)

    # isort: off
    from daytwo.server import curation  # noqa: F401  (after pages: "Review" follows "Evals")

    # isort: on
    from daytwo.server.routes import (
        agents,
        audit,
        costs,
        evals,
        judges,
        knowledge,
        model_gateway,
        otlp,
        runs,
        tools,
        traces,
    )
    from daytwo.server.routes import curation as curation_routes

    return [
        otlp.router,
        traces.router,
        runs.router,
        agents.router,
        tools.router,
        knowledge.router,
        evals.router,
        curation_routes.router,
        judges.router,
        costs.router,
        audit.router,
        model_gateway.router,
    ]


def app_from_env() -> DaytwoAPI:
    """Factory for ``uvicorn --factory`` (each worker process reads the settings itself)."""
    return create_app(load_settings(), freeze_heap=True)
