"""Swagger UI (``/docs``) served from this server, no CDN.

The JavaScript and CSS come from the ``fastapi-offline`` package's files, mounted at
``/static/apidocs``; the page starts Swagger UI from ``/static/apidocs.js`` (no inline
script), so it keeps the strict Content-Security-Policy. There is no ReDoc page: ReDoc
injects inline styles at run time that even its nonce option does not cover, and the
policy allows none (tried in Chromium); ``/openapi.json`` serves any other viewer.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from daytwo.exceptions import MissingDependency

__all__ = ["install_api_docs"]

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>daytwo API · {title}</title>
<link rel="icon" href="/static/apidocs/favicon.png">{head}
</head><body>
<div id="{element}" data-openapi="{openapi}"></div>
<script src="/static/apidocs/{bundle}"></script>
<script src="/static/apidocs.js"></script>
</body></html>
"""


def _assets() -> Path:
    try:
        import fastapi_offline
    except ImportError as exc:  # pragma: no cover - a runtime dependency of daytwo
        raise MissingDependency(
            "the API docs need fastapi-offline", hint="pip install fastapi-offline"
        ) from exc
    return Path(fastapi_offline.__file__).parent / "static"


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    html = _PAGE.format(
        title="Swagger UI",
        head='\n<link rel="stylesheet" href="/static/apidocs/swagger-ui.css">',
        element="swagger-ui",
        openapi=request.app.openapi_url,
        bundle="swagger-ui-bundle.js",
    )
    return HTMLResponse(html)


def install_api_docs(app: FastAPI) -> None:
    """Add /docs and its local assets to ``app`` (built with docs_url=None, redoc_url=None)."""
    app.include_router(router)
    app.mount("/static/apidocs", StaticFiles(directory=str(_assets())), name="apidocs")
