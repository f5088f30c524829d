"""Idempotency ledger: one stored result per key, so tool side effects happen once.

The runtime passes a key per (run, step). The first caller claims the key with a
``pending`` row (the primary key makes the claim atomic on SQLite and
PostgreSQL), calls the backend and stores the result; later callers with the
same key get the stored result. A caller that finds the key pending waits for
it; a claim older than the lease (its caller crashed mid-call) is taken over.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any, cast

import rfc8785
import sqlalchemy as sa
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from daytwo.exceptions import ConflictError
from daytwo.store import Store, utcnow
from daytwo.store.group_commit import GroupCommit
from daytwo.store.tables.gateway import GatewayIdempotency

__all__ = ["IdempotencyLedger", "arguments_hash"]

log = logging.getLogger("daytwo.gateway.idempotency")

# Core statements on the ledger's table, built once: every keyed tool call runs the
# claim and the completion, and building an ORM statement (and going through the ORM's
# bulk-update path for the completion) cost more than the SQLite write itself.
_LEDGER = cast("sa.Table", GatewayIdempotency.__table__)
_CLAIM = sa.insert(_LEDGER)
_COMPLETE = (
    sa.update(_LEDGER)
    .where(_LEDGER.c.key == sa.bindparam("done_key"))
    .values(status="done", result=sa.bindparam("done_result", type_=_LEDGER.c.result.type))
)


class _Prepared:
    """The claim and the result as prepared SQL on a SQLite store's driver connection.

    The values are encoded by the columns' own SQLAlchemy bind processors (looked up
    once), so the rows are the ones the Core statements above write.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        q = dialect.identifier_preparer.quote
        table = q(_LEDGER.name)
        cols = ("key", "tool", "version", "arguments_hash", "status", "created_at")
        self.claim_sql = (
            f"INSERT INTO {table} ({', '.join(q(c) for c in cols)}) "
            f"VALUES ({', '.join('?' for _ in cols)}) ON CONFLICT ({q('key')}) DO NOTHING"
        )
        self.complete_sql = (
            f"UPDATE {table} SET {q('status')} = 'done', {q('result')} = ? WHERE {q('key')} = ?"
        )
        self.created_at = _processor(_LEDGER.c.created_at, dialect)
        self.result = _processor(_LEDGER.c.result, dialect)


def _processor(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any]:
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else (lambda value: value)


def arguments_hash(arguments: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a call's arguments."""
    return hashlib.sha256(rfc8785.dumps(arguments)).hexdigest()


class IdempotencyLedger:
    """Claims, completes and releases idempotency keys in the system of record."""

    def __init__(self, store: Store, *, wait_s: float = 30.0, lease_s: float = 600.0) -> None:
        self.store = store
        self._prepared = _Prepared(store.engine.dialect) if store.is_sqlite else None
        # The claims and results of concurrent calls (a map step's items) share commits.
        self._writes = GroupCommit(store) if store.is_sqlite else None
        self.wait_s = wait_s
        self.lease_s = lease_s

    def claim(
        self, key: str, tool: str, version: str, arguments: dict[str, Any]
    ) -> dict[str, Any] | None:
        """None: the caller owns the key and calls the backend; else the stored result.

        A call still running elsewhere with the same key is waited for up to
        ``wait_s``; a claim older than ``lease_s`` is taken over, so a crash costs
        at most one repeated backend call.
        """
        digest = arguments_hash(arguments)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                # One prebuilt INSERT (prepared SQL on SQLite, no ORM session): this
                # runs on every keyed tool call, so its cost is the gateway's per-call
                # overhead.
                self._claim(key, tool, version, digest)
                return None
            except (SAIntegrityError, sqlite3.IntegrityError):
                pass
            with self.store.session(write=True) as s:
                row = s.get(GatewayIdempotency, key)
                if row is None:  # released in between: claim again
                    continue
                if row.tool != tool or row.arguments_hash != digest:
                    raise ConflictError(
                        f"idempotency key {key!r} was used for another call ({row.tool})",
                        hint="use one key per (run, step) and call",
                    )
                if row.status == "done" and row.result is not None:
                    return dict(row.result)
                age = (utcnow() - row.created_at).total_seconds()
                if age > self.lease_s:  # take the stale claim over, once
                    taken = s.execute(
                        update(GatewayIdempotency)
                        .where(
                            GatewayIdempotency.key == key,
                            GatewayIdempotency.status == "pending",
                            GatewayIdempotency.created_at == row.created_at,
                        )
                        .values(created_at=utcnow())
                    )
                    if getattr(taken, "rowcount", 0) == 1:
                        log.warning("took over the stale idempotency claim %r", key)
                        return None
            if time.monotonic() >= deadline:
                raise ConflictError(
                    f"a call with idempotency key {key!r} is still in progress",
                    hint="wait for it and retry",
                )
            time.sleep(0.05)

    def _claim(self, key: str, tool: str, version: str, digest: str) -> None:
        """Insert the ``pending`` row (IntegrityError when the key exists)."""
        prepared, writes = self._prepared, self._writes
        if prepared is not None and writes is not None:
            created_at = prepared.created_at(utcnow())
            row = (key, tool, version, digest, "pending", created_at)
            if writes.run(prepared.claim_sql, row) == 0:
                raise sqlite3.IntegrityError(f"idempotency key {key!r} exists")
            return
        claim = {
            "key": key,
            "tool": tool,
            "version": version,
            "arguments_hash": digest,
            "status": "pending",
            "created_at": utcnow(),
        }
        with self.store.session(write=True) as s:
            s.execute(_CLAIM, claim)

    def complete(self, key: str, result: dict[str, Any]) -> None:
        """Store the result of the call that owns ``key``."""
        prepared, writes = self._prepared, self._writes
        if prepared is not None and writes is not None:
            writes.run(prepared.complete_sql, (prepared.result(result), key))
            return
        with self.store.session(write=True) as s:
            s.execute(_COMPLETE, {"done_key": key, "done_result": result})

    def release(self, key: str) -> None:
        """Give up a claim after a failed call, so a retry calls the backend again."""
        with self.store.session(write=True) as s:
            row = s.get(GatewayIdempotency, key)
            if row is not None and row.status == "pending":
                s.delete(row)
