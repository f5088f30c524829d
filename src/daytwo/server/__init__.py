"""The daytwo service: FastAPI REST API with keys, roles and tenants, dashboard, MCP endpoint.

``create_app(settings=None, store=None)`` builds the ASGI app; ``serve`` runs it with
uvicorn (``--workers N``); ``serve_dashboard`` is what ``make demo`` ends with.
"""

from daytwo.server.app import create_app
from daytwo.server.auth import KeyStore, Principal
from daytwo.server.launch import serve, serve_dashboard

__all__ = ["KeyStore", "Principal", "create_app", "serve", "serve_dashboard"]
