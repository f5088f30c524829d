"""A SQLite store's write-ahead log, checkpointed by a background thread.

In WAL mode every commit appends the pages it changed to the ``-wal`` file; a
*checkpoint* copies committed pages back into the database file, after which writers
reuse the WAL from its start. By default SQLite makes the connection whose commit takes
the WAL past 1,000 pages run that checkpoint itself, inside its commit: tens of
milliseconds (copying the pages, two ``fsync``) added to one unlucky write, such as a
batch of the span writer (issue 16).

A :class:`~daytwo.store.Store` on a SQLite file moves that work off the commit path:

- its connections raise ``PRAGMA wal_autocheckpoint`` to :data:`HARD_CAP_PAGES`, so a
  writer only checkpoints itself when the WAL grew that far (the checkpointer below
  is stopped, or cannot keep up): the WAL stays bounded as before, only higher;
- a daemon thread (:class:`WalCheckpointer`) runs a ``PASSIVE`` checkpoint on its own
  connection every ``interval_s``: it waits for nobody and nobody waits for it (a
  writer appends to the WAL while it copies); when nothing was written since its last
  tick it runs a ``TRUNCATE`` checkpoint (no busy wait: skipped if a writer is active),
  which gives the WAL's disk space back.

What a crash can lose does not change: a checkpoint only copies frames of committed
transactions from the WAL into the database file, and the WAL stays the record of
every commit until then (SQLite replays it at the next open). ``synchronous=NORMAL``
is unchanged: a process crash (``kill -9``) loses no commit; a power loss can lose the
commits since the WAL was last synced, which happens at each checkpoint, now every
``interval_s`` while there are writes rather than every 1,000 pages.

Several processes on one database each run their own checkpointer: SQLite lets one
checkpoint run at a time and the others' ``PASSIVE`` attempts return at once.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "HARD_CAP_PAGES",
    "INTERVAL_S",
    "LOCK_WAIT_MS",
    "SOFT_CAP_PAGES",
    "CheckpointStats",
    "WalCheckpointer",
    "attach_checkpointer",
    "wal_file",
]

log = logging.getLogger(__name__)

HARD_CAP_PAGES = 10_000
"""``PRAGMA wal_autocheckpoint`` of a store's connections: a writer whose commit takes
the WAL past this many pages (about 40 MB of 4 KiB pages) checkpoints itself, as every
writer did past SQLite's default of 1,000 before the background checkpointer."""

INTERVAL_S = 0.25
"""Seconds between the background checkpointer's ticks."""

SOFT_CAP_PAGES = 1_000
"""A WAL of this many pages (SQLite's own checkpoint threshold) is started over: the
checkpointer runs a FULL checkpoint, which waits up to :data:`LOCK_WAIT_MS` for the
write lock, so that writers that never pause do not grow it to the hard cap."""

LOCK_WAIT_MS = 10
"""How long a FULL or TRUNCATE checkpoint waits for the write lock (and for readers of
older snapshots) before it does what a PASSIVE one would. Writers wait for it while it
holds the lock: at most this long plus the copy of the frames PASSIVE left."""


def wal_file(url: URL | str) -> str | None:
    """The database file a checkpointer would keep the WAL of, or None when ``url`` is
    not a writable SQLite file (PostgreSQL, ``:memory:``, an in-memory or read-only
    URI database, not a URL at all)."""
    try:
        url = make_url(url)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:":
        return None
    if url.query.get("mode") in {"memory", "ro"} or url.query.get("immutable") == "1":
        return None
    return database


@dataclass
class CheckpointStats:
    """What the checkpointer did since it started (read by tests and diagnostics)."""

    ticks: int = 0
    passive: int = 0
    """PASSIVE checkpoints that copied frames into the database file."""
    frames: int = 0
    """Frames copied by those checkpoints."""
    full: int = 0
    """FULL checkpoints (past the soft cap), after which the next writer starts the WAL
    over."""
    truncated: int = 0
    """TRUNCATE checkpoints that emptied the WAL file while the store was idle."""
    errors: int = 0


class WalCheckpointer:
    """Checkpoints one SQLite database's WAL from a daemon thread of this process.

    :meth:`ensure_running` starts the thread (the store calls it as each new pooled
    connection is made, so a forked child, whose pool is new, starts its own);
    :meth:`stop` stops it and closes its connection. The thread holds no reference to
    the store or its engine, only ``connect``, a function that opens a new DB-API
    connection to the same database.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        interval_s: float = INTERVAL_S,
        soft_cap_pages: int = SOFT_CAP_PAGES,
        lock_wait_ms: int = LOCK_WAIT_MS,
        name: str = "daytwo-wal-checkpoint",
    ) -> None:
        if interval_s <= 0 or soft_cap_pages <= 0 or lock_wait_ms < 0:
            raise ValueError("interval_s and soft_cap_pages must be positive")
        self._connect = connect
        self.interval_s = interval_s
        self.soft_cap_pages = soft_cap_pages
        self.lock_wait_ms = lock_wait_ms
        self.name = name
        self.stats = CheckpointStats()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while this process's checkpointer thread is alive."""
        thread = self._thread
        return self._pid == os.getpid() and thread is not None and thread.is_alive()

    def ensure_running(self) -> None:
        """Start the thread unless it already runs in this process."""
        if self._pid == os.getpid():  # the common case: one attribute read, no lock
            return
        with self._lock:
            pid = os.getpid()
            if self._pid == pid:
                return
            # After a fork the parent's thread does not exist here: start our own.
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name=self.name, daemon=True
            )
            self._pid = pid
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (after the checkpoint it may be running) and close its
        connection; :meth:`ensure_running` starts it again."""
        with self._lock:
            thread, pid = self._thread, self._pid
            self._stop.set()
            self._thread, self._pid = None, None
        if thread is not None and pid == os.getpid() and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self, stop: threading.Event) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error:
            log.warning("WAL checkpointer cannot connect; writers checkpoint the WAL themselves")
            return
        try:
            conn.isolation_level = None
            # PASSIVE never waits for a lock; RESTART and TRUNCATE wait this long for
            # the write lock, then give up (and do what PASSIVE would).
            conn.execute(f"PRAGMA busy_timeout={int(self.lock_wait_ms)}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                return
            self._loop(conn, stop)
        finally:
            conn.close()

    def _loop(self, conn: sqlite3.Connection, stop: threading.Event) -> None:
        stats = self.stats
        last_frames = last_done = 0
        while not stop.wait(self.interval_s):
            stats.ticks += 1
            try:
                # (busy, frames in the WAL, frames of it now in the database file)
                _busy, frames, done = self._checkpoint(conn, "PASSIVE")
                if frames < 0:  # not in WAL mode any more, or a checkpoint was running
                    continue
                # A smaller WAL than last tick's was restarted by a writer in between.
                copied = done - last_done if frames >= last_frames else done
                if copied > 0:
                    stats.passive += 1
                    stats.frames += copied
                if frames >= self.soft_cap_pages:
                    # Writers that never pause leave no moment at which every frame is
                    # in the database file, and only then does the next writer start
                    # the WAL over. FULL waits (briefly) for the write lock and copies
                    # the few frames PASSIVE left, so that the next writer can.
                    busy, frames, done = self._checkpoint(conn, "FULL")
                    stats.full += 0 if busy else 1
                elif copied == 0 and frames > 0 and done == frames and frames == last_frames:
                    # Nothing written since the last tick, all of it in the database
                    # file: empty the WAL file (skipped if a writer holds it).
                    busy, frames, done = self._checkpoint(conn, "TRUNCATE")
                    stats.truncated += 0 if busy else 1
                last_frames, last_done = frames, done
            except sqlite3.Error as exc:
                # e.g. the database file was removed under a test's store: keep trying
                # quietly; writers checkpoint themselves past the hard cap anyway.
                stats.errors += 1
                if stats.errors == 1:
                    log.warning("WAL checkpoint failed: %s", exc)

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection, mode: str) -> tuple[int, int, int]:
        row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        if row is None:
            return 1, -1, -1
        busy, frames, done = row
        return int(busy), int(frames), int(done)


def attach_checkpointer(
    engine: Engine,
    *,
    interval_s: float = INTERVAL_S,
    name: str = "daytwo-wal-checkpoint",
) -> WalCheckpointer | None:
    """A :class:`WalCheckpointer` for ``engine``'s database file, started as the engine
    makes each new connection (so a forked child starts its own) and stopped when the
    engine is garbage; None when ``engine`` is not on a writable SQLite file.

    The engine's connections should raise ``PRAGMA wal_autocheckpoint`` (e.g. to
    :data:`HARD_CAP_PAGES`): otherwise its writers still checkpoint in their commits
    past SQLite's default of 1,000 pages. Listeners registered before this call run
    first, so the one that sets ``journal_mode=WAL`` should come before it.
    """
    if wal_file(engine.url) is None:
        return None
    dialect = engine.dialect
    cargs, cparams = dialect.create_connect_args(engine.url)
    checkpointer = WalCheckpointer(
        functools.partial(dialect.loaded_dbapi.connect, *cargs, **cparams),
        interval_s=interval_s,
        name=name,
    )
    event.listen(engine, "connect", lambda *_: checkpointer.ensure_running())
    weakref.finalize(engine, checkpointer.stop)
    return checkpointer
