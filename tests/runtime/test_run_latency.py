"""A run's latency is stored when it ends, by every writer of a run's end, and backfilled.

``latency_ms`` must equal ``finished_at - created_at`` (in ms, exactly) and
``latency_bucket`` its histogram bucket, whoever ended the run: the workflow, a cancel,
a resume (which clears them), the executors' reaper, OTLP ingest, the seed fixture;
and the migration that added the columns fills them in for runs that ended before.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from daytwo.runtime import PythonTools, Runtime, Services, load_spec
from daytwo.runtime.executors import settle_ended
from daytwo.runtime.external import record_external_runs
from daytwo.runtime.records import latency_bucket
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.engine import WRITE_OPTION
from daytwo.store.migrate import _config
from daytwo.store.tables.runtime import RunRecord
from daytwo.testing.seed_runs import seed_runs
from daytwo.tracing.ingest import TraceSummary


def _rows(store: Store, *ids: str) -> list[RunRecord]:
    with store.session() as s:
        q = sa.select(RunRecord).order_by(RunRecord.id)
        if ids:
            q = q.where(RunRecord.id.in_(ids))
        return list(s.scalars(q))


def _assert_stored(row: RunRecord) -> None:
    """The row's latency is its own finished_at - created_at, and its bucket that one's."""
    assert row.finished_at is not None, row.id
    exact = (row.finished_at - row.created_at) / timedelta(milliseconds=1)
    assert row.latency_ms == exact, (row.id, row.latency_ms, exact)
    assert row.latency_bucket == latency_bucket(exact), row.id


def _queued(store: Store, run_id: str, created: datetime) -> None:
    with store.session(write=True) as s:
        s.add(
            RunRecord(
                id=run_id,
                agent_name="x",
                agent_version=1,
                status="queued",
                inputs={},
                principal="",
                created_at=created,
            )
        )


def test_the_workflow_a_cancel_and_a_resume_write_the_latency(
    runtime: Runtime, tools: PythonTools
) -> None:
    def slow(x: str, idempotency_key: str) -> str:
        time.sleep(0.15)
        return x

    tools.add("slow", slow)
    steps = [
        {"id": f"s{i}", "kind": "tool", "tool": "slow", "arguments": {"x": f"s{i}"}}
        for i in range(4)
    ]
    runtime.registry.register(load_spec({"name": "long", "steps": steps}))
    done = runtime.start("long", {})
    assert done["status"] == "succeeded"
    (row,) = _rows(runtime.store, done["id"])
    _assert_stored(row)
    assert row.latency_ms is not None
    assert row.latency_ms >= 4 * 150

    run = runtime.start("long", {}, wait=False)
    time.sleep(0.3)
    runtime.cancel(run["id"])
    (cancelled,) = _rows(runtime.store, run["id"])
    assert cancelled.status == "cancelled"
    _assert_stored(cancelled)
    # A resume opens the run again: no end, no latency, until the workflow ends it.
    runtime.records.reopen(run["id"], status="queued", error=None)
    (reopened,) = _rows(runtime.store, run["id"])
    assert (reopened.finished_at, reopened.latency_ms, reopened.latency_bucket) == (None,) * 3
    resumed = runtime.resume(run["id"], timeout_s=30)
    assert resumed["status"] == "succeeded"
    (row,) = _rows(runtime.store, run["id"])
    _assert_stored(row)
    assert row.latency_ms is not None
    assert cancelled.latency_ms is not None
    assert row.latency_ms > cancelled.latency_ms


def test_a_run_end_is_written_only_with_its_latency(runtime: Runtime) -> None:
    _queued(runtime.store, "r1", utcnow())
    with pytest.raises(ValueError, match="end"):
        runtime.records.set("r1", status="cancelled", finished_at=utcnow())
    assert runtime.records.end("r1", status="cancelled")
    _assert_stored(_rows(runtime.store, "r1")[0])
    assert not runtime.records.end("no-such-run", status="cancelled")


def test_the_reaper_writes_the_latency(sqlite_store: Store, tmp_path: Path) -> None:
    _queued(sqlite_store, "lost-run", utcnow() - timedelta(minutes=5))
    _queued(sqlite_store, "ended-wf", utcnow() - timedelta(seconds=7))
    rt = Runtime(sqlite_store, Services(), data_dir=tmp_path, lease_s=30)
    rt.launch()
    try:
        assert rt.sweep()["failed"] == ["lost-run"]
    finally:
        rt.shutdown()
    # A run whose workflow ended in an error (the sweep's other settlement).
    assert settle_ended(sqlite_store, "ended-wf", SimpleNamespace(status="ERROR")) == "failed"
    assert settle_ended(sqlite_store, "ended-wf", SimpleNamespace(status="ERROR")) is None
    for row in _rows(sqlite_store, "lost-run", "ended-wf"):
        assert row.status == "failed"
        _assert_stored(row)


def test_otlp_runs_count_their_latency_from_their_first_recorded_start(store: Store) -> None:
    start = datetime(2026, 11, 3, 9, 0, 0, 123457, tzinfo=UTC)

    def summary(**kw: Any) -> TraceSummary:
        base: dict[str, Any] = {
            "trace_id": "ab" * 16,
            "run_id": "otlp-" + "ab" * 16,
            "new": True,
            "spans": 1,
            "root_name": "LangGraph",
            "started_at": start,
            "cost_usd": Decimal("0.001"),
        }
        return TraceSummary(**{**base, **kw})

    with store.session(write=True) as s:
        record_external_runs(s.connection(), [summary(status="running")], "acme/key:1")
    (row,) = _rows(store)
    assert (row.finished_at, row.latency_ms, row.latency_bucket) == (None,) * 3
    # A later export ends the trace; a start it reports later than the first is ignored.
    end = start + timedelta(seconds=2, microseconds=345_679)
    later = summary(status="succeeded", finished_at=end, started_at=start + timedelta(seconds=1))
    with store.session(write=True) as s:
        record_external_runs(s.connection(), [later], "acme/key:1")
    (row,) = _rows(store)
    _assert_stored(row)
    assert row.latency_ms == 2345.679
    # A trace first seen finished is inserted with its latency.
    other = summary(
        trace_id="cd" * 16, run_id="otlp-" + "cd" * 16, status="failed", finished_at=end
    )
    with store.session(write=True) as s:
        record_external_runs(s.connection(), [other], "acme/key:1")
    for row in _rows(store):
        _assert_stored(row)


def test_seeded_runs_carry_the_latency_the_runtime_would_write(store: Store) -> None:
    seed_runs(store, 300, seed=11, days=2)
    rows = _rows(store)
    assert len(rows) == 300
    for row in rows:
        if row.status == "running":
            assert (row.finished_at, row.latency_ms, row.latency_bucket) == (None,) * 3
        else:
            _assert_stored(row)


def test_the_migration_backfills_the_latency_of_runs_that_ended_before(db_url: str) -> None:
    store = Store(db_url)
    store.upgrade()
    seed_runs(store, 400, seed=13, days=3)
    seeded = {r.id: (r.latency_ms, r.latency_bucket) for r in _rows(store)}
    assert sum(ms is not None for ms, _ in seeded.values()) > 350
    # Back to the schema before the columns (the runs keep created_at and finished_at),
    # then forward again: the upgrade computes what the writers had stored.
    engine = store.engine.execution_options(**{WRITE_OPTION: True})
    with engine.begin() as conn:
        command.downgrade(_config(conn), "0503_runtime_run_health")
    with store.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("runtime_runs")}
    assert "latency_ms" not in columns
    assert "0504_runtime_run_latency" in store.upgrade()
    backfilled = {r.id: (r.latency_ms, r.latency_bucket) for r in _rows(store)}
    assert backfilled == seeded
    for row in _rows(store):
        if row.finished_at is not None:
            _assert_stored(row)
    store.dispose()
