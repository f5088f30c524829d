"""Root fixtures: no network but loopback, a clean DAYTWO_* environment, stores on both backends."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from daytwo.store import Store

PG_URL = os.environ.get("DAYTWO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DAYTWO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in {"localhost", ""}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        raise OSError(f"test tried to reach non-loopback address {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_loopback(address):
        raise OSError(f"test tried to reach non-loopback address {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


# A SQLite transaction begun with a plain (deferred) BEGIN that reads and then writes
# fails with "database is locked" at once when another connection wrote in between: the
# busy handler cannot apply to a lock upgrade. Code that writes must open its session
# with ``write=True`` (BEGIN IMMEDIATE). This guard watches every SQLite connection in
# the test process and fails the test that ran such a transaction, naming the code.
_upgrades: list[str] = []
_upgrades_lock = threading.Lock()
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


@event.listens_for(Engine, "before_cursor_execute")
def _watch_sqlite_upgrades(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    if conn.dialect.name != "sqlite":
        return
    head = statement.lstrip()[:16].upper()
    if head.startswith("BEGIN"):
        conn.info["dt_tx"] = "immediate" if "IMMEDIATE" in head else "deferred"
        conn.info["dt_read"] = False
        return
    if conn.info.get("dt_tx") != "deferred":
        return
    if head.startswith("SELECT"):
        conn.info["dt_read"] = True
    elif head.startswith(_WRITES) and not conn.info.get("dt_read"):
        conn.info["dt_tx"] = None  # wrote first: it holds the write lock from here on
    elif head.startswith(_WRITES):
        frames = traceback.extract_stack()
        if any("/dbos/" in f.filename for f in frames):
            return  # DBOS's own system-database transactions are not ours to change
        ours = [
            f"{f.filename.split('/src/')[-1]}:{f.lineno} {f.name}"
            for f in frames
            if "/src/daytwo/" in f.filename
        ]
        if ours:
            with _upgrades_lock:
                _upgrades.append(
                    f"{statement.split()[0]} after a read, from " + " <- ".join(reversed(ours))
                )
        conn.info["dt_tx"] = None  # one report per transaction


@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _transaction_ended(conn: Any) -> None:
    conn.info["dt_tx"] = None


@pytest.fixture(autouse=True)
def _writes_declare_themselves() -> Iterator[None]:
    with _upgrades_lock:
        _upgrades.clear()
    yield
    with _upgrades_lock:
        found, _upgrades[:] = list(dict.fromkeys(_upgrades)), []
    if found:
        pytest.fail(
            "a SQLite transaction read and then wrote without BEGIN IMMEDIATE "
            "(open its session with write=True or use Store.write):\n" + "\n".join(found[:5]),
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("DAYTWO_") and not key.startswith("DAYTWO_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Every test works in its own directory so ./.daytwo and ./daytwo.toml are private.
    monkeypatch.chdir(tmp_path)


def _pg_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'daytwo.db'}"


def _extensions_outside_test_schemas(conn: Any) -> None:
    """Keep pg_trgm in ``public``: an extension is one per database and lives in one
    schema; created from a test schema, it would be dropped (with every other schema's
    trigram index) when that schema is, under tests running beside it."""
    import sqlalchemy as sa

    where = conn.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
            "ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
        )
    ).scalar_one_or_none()
    if where is None:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public"))
    elif where != "public":
        conn.execute(sa.text("ALTER EXTENSION pg_trgm SET SCHEMA public"))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL schema in database ``test`` (dropped afterwards)."""
    if not _pg_reachable():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (start it: see DEVELOPERS.md)")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        _extensions_outside_test_schemas(conn)
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            # DBOS's system schema of a test that ran a runtime on this store
            # (``<schema>_dbos``, the tests' convention) goes with it.
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}_dbos" CASCADE'))
        admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """URL of the real Redis (tests should use unique key prefixes)."""
    if not _redis_reachable():
        pytest.skip("Redis is not reachable at 127.0.0.1:6379 (start it: see DEVELOPERS.md)")
    return REDIS_URL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once for SQLite and once for PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store, on SQLite and on PostgreSQL."""
    s = Store(db_url)
    s.upgrade()
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    """A migrated SQLite store only (for tests of SQLite-specific behaviour)."""
    s = Store(sqlite_url)
    s.upgrade()
    try:
        yield s
    finally:
        s.dispose()


# A DBOS executor thread left waiting on a workflow that another (killed or destroyed)
# executor owned keeps the interpreter from exiting after the last test (seen on
# 2026-12-04: `dbos-executor-_0` in SystemDatabase.await_workflow_result). The run's
# result is known by then: report the threads loudly and exit with pytest's status
# instead of hanging CI.
_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    import sys

    left = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if not left or not _exit_status:
        return
    print(
        f"\nconftest: {len(left)} non-daemon thread(s) still running after the last test "
        f"({', '.join(sorted(set(left))[:8])}); exiting with pytest's status "
        f"{_exit_status[-1]} instead of waiting for them",
        file=sys.stderr,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status[-1])
