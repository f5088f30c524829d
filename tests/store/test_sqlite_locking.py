"""SQLite write transactions wait for another process's lock instead of failing."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from daytwo.exceptions import DatabaseLocked
from daytwo.store import Store


def _store(path: Path, busy_ms: int) -> Store:
    store = Store(f"sqlite:///{path}", busy_timeout_ms=busy_ms)
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"))
    return store


@contextmanager
def other_writer(path: Path, hold_s: float) -> Iterator[None]:
    """Another connection (as another process would) holds the write lock for ``hold_s``."""
    locked = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES ('other')")
        locked.set()
        time.sleep(hold_s)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        thread.join()


def test_read_then_write_waits_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = _store(path, busy_ms=5000)
    try:
        # A deferred transaction that reads first cannot wait: SQLite fails it at once.
        with other_writer(path, 0.5):
            t0 = time.monotonic()
            with pytest.raises(DatabaseLocked), store.session() as s:
                s.execute(sa.text("SELECT count(*) FROM t")).scalar()
                s.execute(sa.text("INSERT INTO t (v) VALUES ('deferred')"))
            assert time.monotonic() - t0 < 0.45  # failed before the other writer let go
        # A write session takes the lock at BEGIN, so the busy timeout applies.
        with other_writer(path, 0.5):
            t0 = time.monotonic()
            with store.session(write=True) as s:
                n = s.execute(sa.text("SELECT count(*) FROM t")).scalar_one()
                s.execute(sa.text("INSERT INTO t (v) VALUES ('immediate')"))
            assert time.monotonic() - t0 >= 0.4  # it waited for the other writer
        with store.session() as s:
            values = s.execute(sa.text("SELECT v FROM t ORDER BY id")).scalars().all()
        assert values == ["other", "other", "immediate"]
        assert n == 2  # it read after the other writer's commit: no lost update
    finally:
        store.dispose()


def test_write_retries_past_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = _store(path, busy_ms=100)
    attempts = 0

    def work(s: Session) -> int:
        nonlocal attempts
        attempts += 1
        s.execute(sa.text("INSERT INTO t (v) VALUES ('retried')"))
        return attempts

    try:
        with other_writer(path, 0.6):
            assert store.write(work, attempts=8) > 1
        with store.session() as s:
            values = s.execute(sa.text("SELECT v FROM t ORDER BY id")).scalars().all()
        assert values == ["other", "retried"]  # the failed attempts left nothing behind
        # Without retries left, the lock error reaches the caller.
        with other_writer(path, 0.6), pytest.raises(DatabaseLocked):
            store.write(work, attempts=1)
    finally:
        store.dispose()
