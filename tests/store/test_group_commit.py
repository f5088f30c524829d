"""GroupCommit: concurrent writers share transactions, and each sees its own outcome."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from daytwo.store import Store
from daytwo.store.group_commit import GroupCommit


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'g.db'}")
    with s.sqlite_writer() as conn:
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    yield s
    s.dispose()


def _count_transactions(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    opened: list[int] = []
    original = store.sqlite_writer

    @contextmanager
    def counted() -> Iterator[sqlite3.Connection]:
        opened.append(1)
        with original() as conn:
            yield conn

    monkeypatch.setattr(store, "sqlite_writer", counted)
    return opened


def _wait_queued(writes: GroupCommit, n: int) -> None:
    deadline = time.monotonic() + 10
    while writes._combined.queued() < n:
        assert time.monotonic() < deadline, "writes never queued"
        time.sleep(0.005)


def _rows(store: Store) -> dict[str, int]:
    with store.sqlite_writer() as conn:
        return dict(conn.execute("SELECT k, v FROM t").fetchall())


def test_writers_queued_while_the_writer_is_held_share_one_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = GroupCommit(store)
    opened = _count_transactions(store, monkeypatch)
    counts: dict[str, int] = {}
    sql = "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING"

    def write(k: str) -> None:
        counts[k] = writes.run(sql, (k, 1))

    assert store._writer is not None
    store._writer.acquire()  # the first writer leads and waits here; the rest queue
    threads = [threading.Thread(target=write, args=(f"k{i}",)) for i in range(6)]
    try:
        threads[0].start()
        time.sleep(0.05)
        for t in threads[1:]:
            t.start()
        _wait_queued(writes, 6)
        assert not counts  # nothing acknowledged before its commit
    finally:
        store._writer.release()
    for t in threads:
        t.join(5)
    assert counts == {f"k{i}": 1 for i in range(6)}
    assert len(opened) == 1  # the leader takes what queued while it waited for the writer
    assert _rows(store) == {f"k{i}": 1 for i in range(6)}
    assert writes.run(sql, ("k0", 2)) == 0  # the row count tells a conflict


def test_a_failing_transaction_fails_its_writers_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = GroupCommit(store)
    errors: dict[str, BaseException] = {}

    def write(sql: str, k: str) -> None:
        try:
            writes.run(sql, (k, 1))
        except Exception as exc:  # DatabaseUnavailable: no such table
            errors[k] = exc

    good = "INSERT INTO t (k, v) VALUES (?, ?)"
    bad = "INSERT INTO missing (k, v) VALUES (?, ?)"
    # The first transaction stays open (before its commit) until the other two writes
    # have queued behind it.
    entered, release = threading.Event(), threading.Event()
    original = store.sqlite_writer

    @contextmanager
    def gated() -> Iterator[sqlite3.Connection]:
        with original() as conn:
            yield conn
            if not entered.is_set():
                entered.set()
                release.wait(5)

    monkeypatch.setattr(store, "sqlite_writer", gated)
    first = threading.Thread(target=write, args=(good, "lead"))
    queued = [
        threading.Thread(target=write, args=(good, "a")),
        threading.Thread(target=write, args=(bad, "b")),
    ]
    first.start()
    assert entered.wait(5)
    for t in queued:
        t.start()
    _wait_queued(writes, 2)
    release.set()
    for t in [first, *queued]:
        t.join(5)
    assert set(errors) == {"a", "b"}  # one transaction: both rolled back
    assert _rows(store) == {"lead": 1}
    assert writes.run(good, ("after", 1)) == 1  # the lead was handed back
    assert _rows(store) == {"lead": 1, "after": 1}
