"""The system of record: one engine, transactional sessions, schema checks."""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daytwo.exceptions import DatabaseLocked, SchemaOutdated
from daytwo.store.engine import WRITE_OPTION, is_sqlite, make_engine, map_db_error
from daytwo.store.wal import (
    HARD_CAP_PAGES,
    INTERVAL_S,
    WalCheckpointer,
    attach_checkpointer,
    wal_file,
)

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = ["Store", "WriterHold"]

T = TypeVar("T")

log = logging.getLogger(__name__)

SLOW_HOLD_S = 1.0
"""A write session open this long is logged: other writer threads waited on it (and,
past its first statement, other processes on SQLite's write lock)."""

_OWN_FILES = (__file__, contextlib.__file__)


@dataclass(frozen=True)
class WriterHold:
    """How long one write session was open, and where it was opened (``file:line``)."""

    seconds: float
    caller: str


def _caller() -> str:
    """The first frame outside this module and contextlib: who opened the session."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename in _OWN_FILES:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"


class Store:
    """Owns the engine; hands out sessions that commit on success and roll back on error."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 5000,
        checkpoint_interval_s: float | None = INTERVAL_S,
        wal_hard_cap_pages: int = HARD_CAP_PAGES,
    ) -> None:
        """``checkpoint_interval_s``: on a SQLite file, a background thread checkpoints
        the WAL this often (:mod:`daytwo.store.wal`), and a writer only checkpoints it
        itself past ``wal_hard_cap_pages``; None leaves checkpoints to the writers at
        SQLite's default threshold."""
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        background = checkpoint_interval_s is not None and wal_file(url) is not None
        self.engine: Engine = make_engine(
            url,
            busy_timeout_ms=busy_timeout_ms,
            wal_autocheckpoint=wal_hard_cap_pages if background else None,
        )
        # On a SQLite file, started with the first connection (and again in a forked
        # child, whose pool makes new ones); stopped by dispose(), or when the engine is
        # garbage or the interpreter exits (the thread holds no reference to either).
        self.checkpointer: WalCheckpointer | None = (
            attach_checkpointer(self.engine, interval_s=checkpoint_interval_s)
            if background and checkpoint_interval_s is not None
            else None
        )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writer_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._write_sessions = sessionmaker(self._writer_engine, expire_on_commit=False)
        # A SQLite read transaction in WAL mode is one snapshot from its first read already;
        # PostgreSQL's default READ COMMITTED takes a new one per statement.
        reader = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="REPEATABLE READ")
        )
        self._snapshot_sessions = sessionmaker(reader, expire_on_commit=False)
        # SQLite has one writer at a time. This process's writer threads queue on a
        # lock (handed over at once) rather than in SQLite's busy handler, which sleeps
        # 1, 2, 5, 10 ... ms between tries: ten threads of a map step, each writing its
        # tool call's ledger rows, spent more time asleep than writing. Other processes
        # still meet the busy handler; a thread that waited the busy timeout for the
        # lock goes on without it (and meets the busy handler, as before).
        self._writer = threading.RLock() if self.is_sqlite else None
        self._writer_wait_s = busy_timeout_ms / 1000
        # The longest write session since reset_writer_hold(): a write session must
        # hold only database work (compute first, then write), so tests assert a bound
        # on it; one past SLOW_HOLD_S is logged with its caller.
        self.slow_hold_s = SLOW_HOLD_S
        self.max_writer_hold = WriterHold(0.0, "")

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store the settings point at."""
        return cls(settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite store."""
        return is_sqlite(self.engine)

    @contextmanager
    def session(self, *, write: bool = False, snapshot: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        ``write=True`` for a transaction that writes: on SQLite it starts with
        ``BEGIN IMMEDIATE``, so it waits up to the busy timeout for another process's
        write lock instead of failing at its first write after a read.
        ``snapshot=True`` for a read whose statements must all see the same committed
        state (REPEATABLE READ on PostgreSQL; what every SQLite read transaction gets):
        e.g. a search that reads the permitted set and then the rows it returns.
        """
        if write and snapshot:
            raise ValueError("a session is either a write or a snapshot read")
        maker = (
            self._write_sessions
            if write
            else self._snapshot_sessions
            if snapshot
            else self._sessions
        )
        with self._writing(write):
            try:
                with maker.begin() as session:
                    yield session
            except OperationalError as exc:
                raise map_db_error(exc, self.url) from exc

    @contextmanager
    def sqlite_writer(self) -> Iterator[sqlite3.Connection]:
        """SQLite only: a pooled connection's driver connection in one write transaction.

        The same transaction as ``session(write=True)`` (BEGIN IMMEDIATE, this process's
        writer lock, hold time noted; committed when the block ends, rolled back on
        error), for the few prepared statements of a hot path: SQLAlchemy's session,
        pool and statement machinery cost several times the SQLite work of a one-row
        write (the idempotency ledger's claim and result, on every keyed tool call).
        """
        if not self.is_sqlite:
            raise ValueError("sqlite_writer() is for a SQLite store")
        with self._writing(True):
            try:
                pooled = self.engine.raw_connection()
            except OperationalError as exc:
                raise map_db_error(exc, self.url) from exc
            try:
                conn = pooled.driver_connection
                assert isinstance(conn, sqlite3.Connection)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    yield conn
                    conn.commit()
                except BaseException:
                    if conn.in_transaction:
                        conn.rollback()
                    raise
            except sqlite3.OperationalError as exc:
                raise map_db_error(OperationalError(None, None, exc), self.url) from exc
            finally:
                pooled.close()

    @contextmanager
    def _writing(self, write: bool) -> Iterator[None]:
        """Around a transaction: a writer holds this process's writer lock (SQLite),
        and its hold time is noted."""
        held = (
            write and self._writer is not None and self._writer.acquire(timeout=self._writer_wait_s)
        )
        opened = time.perf_counter() if write else 0.0
        try:
            yield
        finally:
            if write:
                self._note_hold(time.perf_counter() - opened)
            if held:
                assert self._writer is not None
                self._writer.release()

    def _note_hold(self, seconds: float) -> None:
        # The caller is looked up only for a new maximum or a slow session (rare): the
        # frames above this generator's are its `with` statement's (after commit, too).
        slow = seconds > self.slow_hold_s
        if not slow and seconds <= self.max_writer_hold.seconds:
            return
        caller = _caller()
        if seconds > self.max_writer_hold.seconds:
            self.max_writer_hold = WriterHold(seconds, caller)
        if slow:
            log.warning(
                "a write transaction was open %.2f s (%s): other writers waited on it; "
                "do slow work (embedding, calls, I/O) before opening it",
                seconds,
                caller,
            )

    def reset_writer_hold(self) -> WriterHold:
        """Return the longest write session since the last reset, and start again."""
        longest, self.max_writer_hold = self.max_writer_hold, WriterHold(0.0, "")
        return longest

    def write(self, work: Callable[[Session], T], *, attempts: int = 4) -> T:
        """Run ``work`` in a write transaction; retry it while SQLite stays locked.

        A transaction that waited the whole busy timeout rolled back entirely, so
        running ``work`` again is safe when ``work`` only touches its session (no
        side effects outside the transaction). Retries wait a random, growing pause
        (up to 2 s) so that waiting writers do not collide again.
        """
        # The first try without tenacity: building its retry machinery costs more than
        # a small write's transaction, and nearly every write succeeds at once.
        try:
            with self.session(write=True) as s:
                return work(s)
        except DatabaseLocked:
            if attempts <= 1:
                raise

        from tenacity import (
            retry,
            retry_if_exception_type,
            stop_after_attempt,
            wait_random_exponential,
        )

        # Tries 2..attempts, the pause before try k up to 0.1 * 2**(k-1) s as before.
        time.sleep(random.uniform(0, 0.1))

        @retry(
            retry=retry_if_exception_type(DatabaseLocked),
            stop=stop_after_attempt(attempts - 1),
            wait=wait_random_exponential(multiplier=0.2, max=2.0),
            reraise=True,
        )
        def once() -> T:
            with self.session(write=True) as s:
                return work(s)

        return once()

    def ping(self) -> None:
        """Connect once, or raise DatabaseUnavailable/DatabaseLocked."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise map_db_error(exc, self.url) from exc

    def upgrade(self) -> list[str]:
        """Apply pending migrations; return the revisions applied (empty when current)."""
        from daytwo.store import migrate  # alembic: 0.4 s of every CLI start otherwise

        try:
            return migrate.upgrade(self.engine)
        except OperationalError as exc:
            raise map_db_error(exc, self.url) from exc

    def schema_status(self) -> tuple[set[str], set[str]]:
        """(applied heads, code heads)."""
        from daytwo.store import migrate

        try:
            return migrate.applied_heads(self.engine), migrate.code_heads()
        except OperationalError as exc:
            raise map_db_error(exc, self.url) from exc

    def check_schema(self) -> None:
        """Raise SchemaOutdated unless the database is at the code's heads."""
        from daytwo.store.heads import script_heads, stored_heads

        if stored_heads(self.engine) == set(script_heads()):  # no Alembic on the hot path
            return
        applied, heads = self.schema_status()
        if applied == heads:
            return
        if not applied:
            raise SchemaOutdated(
                "the database has no daytwo schema yet", hint="run `daytwo db upgrade`"
            )
        from daytwo.store import migrate

        known = migrate.known_revisions()
        if applied - known:
            raise SchemaOutdated(
                f"the database schema ({', '.join(sorted(applied - known))}) is newer than "
                "this version of daytwo",
                hint="upgrade daytwo (pip install -U daytwo)",
            )
        raise SchemaOutdated(
            "the database schema is older than the code", hint="run `daytwo db upgrade`"
        )

    def dispose(self) -> None:
        """Stop the WAL checkpointer and close every pooled connection (the store
        stays usable: its next connection starts them again)."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
