"""Engines for the system of record, with SQLite tuned for an embedded store."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from daytwo.exceptions import (
    ConfigError,
    DatabaseLocked,
    DatabaseUnavailable,
    MissingDependency,
    StoreError,
)
from daytwo.store.analyzers import analyze_text

__all__ = ["WRITE_OPTION", "is_sqlite", "make_engine", "map_db_error"]


def is_sqlite(engine_or_url: Engine | str) -> bool:
    """True when the URL or engine is SQLite."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def _sqlite_pragmas(busy_timeout_ms: int, wal_autocheckpoint: int | None) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy own transactions (pysqlite's implicit BEGIN is off).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if wal_autocheckpoint is not None:
            # A background checkpointer keeps the WAL short (daytwo.store.wal): a
            # committing writer only checkpoints itself past this many pages.
            cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cur.close()
        # The keyword index's triggers stem non-English collections' chunks with it.
        dbapi_conn.create_function("daytwo_analyze", 2, analyze_text, deterministic=True)

    return on_connect


WRITE_OPTION = "daytwo_write"
"""Execution option of connections whose transactions write (``Store.session(write=True)``)."""


def _sqlite_begin(conn: Any) -> None:
    # Readers: a plain (deferred) BEGIN keeps WAL's concurrent reads. Writers: BEGIN
    # IMMEDIATE takes the write lock first, so SQLite's busy handler waits for it; a
    # deferred transaction that reads before it writes gets SQLITE_BUSY at once when
    # another connection holds the lock (the busy handler cannot apply to an upgrade).
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(
    url: str,
    *,
    busy_timeout_ms: int = 5000,
    wal_autocheckpoint: int | None = None,
    **kwargs: Any,
) -> Engine:
    """Create an engine, or raise a ConfigError/MissingDependency naming the fix.

    ``wal_autocheckpoint`` (SQLite): the WAL size in pages past which a committing
    connection checkpoints it (SQLite's default, 1,000, when None).
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {url!r} is not a valid SQLAlchemy URL",
            hint="use sqlite:///path/to/daytwo.db or postgresql+psycopg://user@host/db",
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigError(
            f"database backend {backend!r} is not supported",
            hint="use sqlite:///... (embedded) or postgresql+psycopg://... (scale-out)",
        )
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        parent = Path(parsed.database).expanduser().resolve().parent
        if not parent.is_dir():
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"cannot create the directory {parent} for the SQLite database: {exc}",
                    hint="set DAYTWO_DATA_DIR or DAYTWO_DATABASE_URL to a writable place",
                ) from exc
    try:
        if backend == "sqlite":
            engine = create_engine(parsed, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms, wal_autocheckpoint))
            event.listen(engine, "begin", _sqlite_begin)
        else:
            kwargs.setdefault("pool_pre_ping", True)
            engine = create_engine(parsed, **kwargs)
    except NoSuchModuleError as exc:
        raise ConfigError(
            f"unknown database driver in {parsed.render_as_string(hide_password=True)!r}",
            hint="use postgresql+psycopg://... with the postgres extra",
        ) from exc
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            f"the database driver for {backend} is not installed ({exc.name})",
            hint="pip install 'daytwo[postgres]'",
        ) from exc
    return engine


_LOCKED = re.compile(r"database is locked|database table is locked", re.I)


def map_db_error(exc: OperationalError, url: str) -> StoreError:
    """Turn a driver's OperationalError into the daytwo error that names the fix."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    safe_url = make_url(url).render_as_string(hide_password=True)
    if _LOCKED.search(text):
        return DatabaseLocked(
            "the SQLite database is locked by another process",
            hint="wait for the other daytwo process to finish, or raise "
            "DAYTWO_SQLITE_BUSY_TIMEOUT_MS",
        )
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return DatabaseUnavailable(
        f"cannot use the database {safe_url}: {first}",
        hint="check DAYTWO_DATABASE_URL and that the database server is running",
    )
