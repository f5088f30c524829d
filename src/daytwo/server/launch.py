"""Run the server with uvicorn: one in-process worker, or N worker processes.

With ``DAYTWO_SERVE_RUNS=enqueue`` the server's processes only record and queue runs;
``daytwo runs worker`` processes execute them. Topology for PostgreSQL:
``daytwo serve --workers N`` plus one or more ``daytwo runs worker``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from typing import Any

from daytwo.exceptions import ConfigError, ConflictError, InputError
from daytwo.settings import Settings

__all__ = [
    "check_enqueue_backend",
    "check_port",
    "serve",
    "serve_dashboard",
    "settings_env",
]

_FACTORY = "daytwo.server.app:app_from_env"


def check_port(host: str, port: int) -> None:
    """Raise ConflictError when ``host:port`` cannot be bound (in use, or not an address here)."""
    if not 0 < port < 65536:
        raise InputError(f"port {port} is out of range", hint="use a port between 1 and 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConflictError(
                    f"port {port} on {host} is already in use",
                    hint="stop the other server or pass --port with a free port",
                ) from exc
            raise InputError(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                hint="pass --host with an address of this machine (e.g. 127.0.0.1)",
            ) from exc


def settings_env(settings: Settings) -> dict[str, str]:
    """``DAYTWO_*`` variables that reproduce ``settings`` in a worker process."""
    env: dict[str, str] = {}
    for name in type(settings).model_fields:
        value: Any = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"DAYTWO_{name.upper()}"] = str(value)
    return env


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    workers: int = 1,
    log_level: str = "warning",
) -> None:
    """Serve until Ctrl-C. Several workers each build the app from the same settings."""
    import uvicorn

    from daytwo.server.app import create_app
    from daytwo.store import Store

    if workers < 1:
        raise InputError("--workers must be at least 1", hint="pass --workers 1 or more")
    check_port(host, port)
    store = Store.from_settings(settings)
    try:
        store.check_schema()
        check_enqueue_backend(settings, store.is_sqlite)
    finally:
        store.dispose()
    if workers == 1:
        uvicorn.run(
            create_app(settings, freeze_heap=True),
            host=host,
            port=port,
            log_level=log_level,
            timeout_graceful_shutdown=3,
        )
        return
    # Worker processes are spawned: they read the settings from the environment.
    os.environ.update(settings_env(settings))
    uvicorn.run(
        _FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        timeout_graceful_shutdown=3,
    )


def check_enqueue_backend(settings: Settings, is_sqlite: bool) -> None:
    """Refuse ``serve_runs = "enqueue"`` over SQLite (no worker process shares that queue)."""
    if settings.serve_runs == "enqueue" and is_sqlite:
        raise ConfigError(
            "DAYTWO_SERVE_RUNS=enqueue needs PostgreSQL: with SQLite the API processes "
            "execute their runs themselves (one file has one writer at a time)",
            hint="set DAYTWO_DATABASE_URL to a PostgreSQL URL, or unset DAYTWO_SERVE_RUNS",
        )


def serve_dashboard(settings: Settings, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the dashboard over ``settings``' store; print the URL; return on Ctrl-C.

    For ``make demo``/``daytwo quickstart``: call it after the quickstart has
    migrated the store. It creates a first admin key for tenant ``default`` when
    the store has none and prints it once, so the operator can log in.
    """
    from rich.console import Console

    from daytwo.server.auth import KeyStore
    from daytwo.store import Store

    console = Console(highlight=False)
    check_port(host, port)
    store = Store.from_settings(settings)
    try:
        store.check_schema()
        keys = KeyStore(store)
        if not keys.list():
            _, key = keys.create(role="admin", tenant="default", name="quickstart")
            console.print(f"admin key for tenant default (shown once): [bold]{key}[/bold]")
        else:
            console.print("log in with an API key (new one: daytwo keys create --role admin)")
    finally:
        store.dispose()
    console.print(f"dashboard: [bold]http://{host}:{port}/[/bold] — Ctrl-C stops")
    with contextlib.suppress(KeyboardInterrupt):
        serve(settings, host=host, port=port, workers=1)
