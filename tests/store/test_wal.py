"""The WAL of a SQLite store is checkpointed by a background thread, not by writers."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.store import Store
from daytwo.store.wal import HARD_CAP_PAGES

BLOB = 4000  # bytes per row: about one page each


def _table(store: Store) -> None:
    with store.session(write=True) as s:
        s.execute(sa.text("CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, b BLOB)"))


def _write(store: Store, rows: int) -> None:
    for _ in range(rows):
        with store.session(write=True) as s:
            s.execute(sa.text("INSERT INTO blobs (b) VALUES (randomblob(:n))"), {"n": BLOB})


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _checkpointer_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "daytwo-wal-checkpoint"}


def test_writers_only_checkpoint_past_the_hard_cap(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == HARD_CAP_PAGES
    store.dispose()
    plain = Store(f"sqlite:///{tmp_path / 'b.db'}", checkpoint_interval_s=None)
    with plain.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    assert plain.checkpointer is None
    plain.dispose()
    assert Store("sqlite://").checkpointer is None


def test_background_checkpoints_keep_the_wal_bounded_under_a_write_burst(
    tmp_path: Path,
) -> None:
    db = tmp_path / "burst.db"
    # Writers never checkpoint (hard cap far above the burst): only the thread can.
    store = Store(f"sqlite:///{db}", checkpoint_interval_s=0.02, wal_hard_cap_pages=10**7)
    assert store.checkpointer is not None
    store.checkpointer.soft_cap_pages = 100
    _table(store)
    rows, largest = 2500, 0
    for _ in range(rows // 50):
        _write(store, 50)
        largest = max(largest, _size(Path(f"{db}-wal")))
    # Each row writes about three pages to the WAL (row, overflow, b-tree): without the
    # thread the WAL ends about 3x the blobs' size; with it, a fraction of it.
    written = rows * BLOB
    stats = store.checkpointer.stats
    assert largest < written, (largest, written, stats)
    # The rows reached the database file while the store was open: the checkpointer's
    # doing (no writer checkpointed, and nothing closed the database).
    assert _size(db) > written / 2, (_size(db), written, stats)
    assert stats.passive > 0
    assert stats.frames > 0
    assert stats.errors == 0
    with store.session() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM blobs")) == rows
    store.dispose()


def test_a_writer_checkpoints_itself_past_the_hard_cap(tmp_path: Path) -> None:
    db = tmp_path / "cap.db"
    # A checkpointer that never ticks within the test: the writers' hard cap bounds the WAL.
    store = Store(f"sqlite:///{db}", checkpoint_interval_s=3600, wal_hard_cap_pages=50)
    _table(store)
    largest = 0
    for _ in range(30):
        _write(store, 20)
        largest = max(largest, _size(Path(f"{db}-wal")))
    assert largest < 600 * BLOB / 3
    assert store.checkpointer is not None
    assert store.checkpointer.stats.frames == 0
    store.dispose()


def test_an_idle_store_empties_its_wal(tmp_path: Path) -> None:
    db = tmp_path / "idle.db"
    store = Store(f"sqlite:///{db}", checkpoint_interval_s=0.02)
    _table(store)
    _write(store, 100)
    assert _size(Path(f"{db}-wal")) > 0
    assert store.checkpointer is not None
    stats = store.checkpointer.stats
    deadline = time.monotonic() + 10
    while (_size(Path(f"{db}-wal")) or not stats.truncated) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _size(Path(f"{db}-wal")) == 0
    assert stats.truncated >= 1
    with store.session() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM blobs")) == 100
    store.dispose()


def test_dispose_and_garbage_collection_stop_the_thread(tmp_path: Path) -> None:
    before = _checkpointer_threads()
    store = Store(f"sqlite:///{tmp_path / 'stop.db'}", checkpoint_interval_s=0.02)
    _table(store)  # the first connection starts the thread
    assert store.checkpointer is not None
    assert store.checkpointer.running
    (thread,) = _checkpointer_threads() - before
    assert thread.daemon
    store.dispose()
    assert not thread.is_alive()
    assert not store.checkpointer.running
    _write(store, 1)  # still usable: its next connection starts a new thread
    (again,) = _checkpointer_threads() - before
    assert again is not thread
    assert store.checkpointer.running
    del store
    gc.collect()
    again.join(5)
    assert not again.is_alive()


def _child_writes(url: str, rows: int) -> None:
    store = Store(url, checkpoint_interval_s=0.02)
    _write(store, rows)
    assert store.checkpointer is not None
    assert store.checkpointer.running
    store.dispose()


def test_two_processes_share_a_database_each_with_a_checkpointer(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    url = f"sqlite:///{db}"
    store = Store(url, checkpoint_interval_s=0.02)
    store.checkpointer.soft_cap_pages = 100  # type: ignore[union-attr]
    _table(store)
    child = mp.get_context("spawn").Process(target=_child_writes, args=(url, 400))
    child.start()
    _write(store, 400)
    child.join(60)
    assert child.exitcode == 0
    with store.session() as s:
        assert s.scalar(sa.text("SELECT count(*) FROM blobs")) == 800
        assert s.scalar(sa.text("PRAGMA integrity_check")) == "ok"
    store.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_its_own_checkpointer(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'fork.db'}", checkpoint_interval_s=0.02)
    _table(store)
    assert store.checkpointer is not None
    child = mp.get_context("fork").Process(target=_forked_child, args=(store,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    store.dispose()


def _forked_child(store: Store) -> None:
    assert store.checkpointer is not None
    assert not store.checkpointer.running
    store.engine.dispose(close=False)  # never use the parent's connections
    _write(store, 5)
    assert store.checkpointer.running
    store.dispose()


def test_the_dbos_system_database_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    from daytwo.runtime.dbos_system import sqlite_system_engine

    db = tmp_path / "dbos.sqlite"
    before = {t for t in threading.enumerate() if t.name == "daytwo-dbos-wal-checkpoint"}
    engine = sqlite_system_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == HARD_CAP_PAGES
        conn.exec_driver_sql("CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)")
    for _ in range(50):
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO blobs (b) VALUES (randomblob(4000))")
    (thread,) = {
        t for t in threading.enumerate() if t.name == "daytwo-dbos-wal-checkpoint"
    } - before
    # No writer checkpoints below the hard cap and nothing closed the database: rows in
    # the database file got there by the thread.
    deadline = time.monotonic() + 10
    while _size(db) < 50 * BLOB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _size(db) >= 50 * BLOB
    engine.dispose()
    del engine, conn  # a Connection refers to its engine
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()
    # In memory there is no WAL file to keep: no thread.
    sqlite_system_engine("sqlite://").dispose()
