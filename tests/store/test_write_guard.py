"""The root conftest's guard catches a SQLite transaction that reads, then writes."""

from __future__ import annotations

import sqlalchemy as sa

import conftest
from daytwo.store import Store
from daytwo.tracing.audit import AuditLog


def test_a_deferred_read_then_write_is_reported(sqlite_store: Store) -> None:
    log = AuditLog(sqlite_store)
    log.append(kind="probe", actor="t")  # its own write transaction: not reported
    assert conftest._upgrades == []
    with sqlite_store.session() as s:  # deferred: the caller forgot write=True
        s.execute(sa.text("SELECT 1"))
        log.append(kind="probe", actor="t", session=s)
    found, conftest._upgrades[:] = list(conftest._upgrades), []
    assert len(found) == 1
    assert "after a read" in found[0]
    assert "tracing/audit.py" in found[0]


def test_a_write_session_is_not_reported(sqlite_store: Store) -> None:
    log = AuditLog(sqlite_store)
    with sqlite_store.session(write=True) as s:
        s.execute(sa.text("SELECT 1"))
        log.append(kind="probe", actor="t", session=s)
    assert conftest._upgrades == []
