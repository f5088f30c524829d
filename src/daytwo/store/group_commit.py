"""Group commit: concurrent threads' small SQLite writes, committed in one transaction.

    writes = GroupCommit(store)
    rowcount = writes.run("UPDATE t SET v = ? WHERE k = ?", (1, "a"))

``run`` returns only after the transaction that holds its statement committed, so a
write is as durable when it returns as in a transaction of its own. The first caller
that finds no write under way leads: it takes the store's writer (BEGIN IMMEDIATE),
runs every statement queued so far, in order, and commits; callers that arrive
meanwhile queue, and the first of them leads the next transaction. Threads that write
together (the items of a map step, each claiming and completing its tool call's
idempotency key) then share one BEGIN and one commit instead of queueing for one each;
a lone caller pays one lock, one list and one event more than a write of its own.

A statement that fails fails its whole transaction, for every caller in it (each gets
the error): statements given here must not fail on a row's content (use
``ON CONFLICT DO NOTHING`` and the row count instead of a constraint error).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daytwo.store.store import Store

__all__ = ["GroupCommit"]


class _Write:
    __slots__ = ("done", "error", "lead", "params", "rowcount", "sql")

    def __init__(self, sql: str, params: tuple[Any, ...]) -> None:
        self.sql = sql
        self.params = params
        self.done: threading.Event | None = None  # a follower's, to wait on
        self.lead = False
        self.rowcount = 0
        self.error: BaseException | None = None


class GroupCommit:
    """Statements of concurrent callers on a SQLite store, committed together."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._queue: list[_Write] = []
        self._leading = False

    def run(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one statement; return its row count once its transaction committed."""
        mine = _Write(sql, params)
        with self._lock:
            self._queue.append(mine)
            lead = not self._leading
            if lead:
                self._leading = True
            else:
                mine.done = threading.Event()
        if mine.done is not None:
            mine.done.wait()
            lead = mine.lead  # handed the lead: its statement is still queued
        if lead:
            self._commit_queued()
        if mine.error is not None:
            raise mine.error
        return mine.rowcount

    def _commit_queued(self) -> None:
        """Write the queued statements in one transaction; hand the lead on."""
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            with self.store.sqlite_writer() as conn:
                for write in batch:
                    write.rowcount = conn.execute(write.sql, write.params).rowcount
        except BaseException as exc:
            for write in batch:
                write.error = exc
        finally:
            with self._lock:
                following = self._queue[0] if self._queue else None
                self._leading = following is not None
            if following is not None:
                assert following.done is not None  # queued while a write was under way
                following.lead = True
                following.done.set()
            for write in batch:
                if write.done is not None:
                    write.done.set()
