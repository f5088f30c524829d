"""Group commit: concurrent threads' small SQLite writes, committed in one transaction.

    writes = GroupCommit(store)
    rowcount = writes.run("UPDATE t SET v = ? WHERE k = ?", (1, "a"))

``run`` returns only after the transaction that holds its statement committed, so a
write is as durable when it returns as in a transaction of its own. Statements are
combined (:class:`daytwo._combining.Combiner`): the first caller that finds no write
under way leads: it takes the store's writer (BEGIN IMMEDIATE), runs every statement
queued by then, in order, and commits; callers that arrive meanwhile queue, and the
first of them leads the next transaction. Threads that write together (the items of a
map step, each claiming and completing its tool call's idempotency key) then share one
BEGIN and one commit instead of queueing for one each.

A statement that fails fails its whole transaction, for every caller in it (each gets
the error): statements given here must not fail on a row's content (use
``ON CONFLICT DO NOTHING`` and the row count instead of a constraint error).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from daytwo._combining import Combiner

if TYPE_CHECKING:
    from daytwo.store.store import Store

__all__ = ["GroupCommit"]

_Statement = tuple[str, tuple[Any, ...]]


def _execute(conn: sqlite3.Connection, statements: list[_Statement]) -> list[int]:
    return [conn.execute(sql, params).rowcount for sql, params in statements]


class GroupCommit:
    """Statements of concurrent callers on a SQLite store, committed together."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._combined: Combiner[_Statement, sqlite3.Connection, int] = Combiner(
            lambda: store.sqlite_writer(), _execute
        )

    def run(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one statement; return its row count once its transaction committed."""
        return self._combined.submit((sql, params))
