"""Executor leases, takeover of a stopped worker's runs, the reaper, one status per run."""

from __future__ import annotations

import signal
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbos import DBOS

from daytwo.runtime import PythonTools, Runtime, Services, load_spec
from daytwo.runtime.executors import claim_slot, live_executors, release, renew
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.runtime import RunRecord, RuntimeExecutor

from .test_durability import N_STEPS, SPEC, _check_effects, _env, _ready, _wait_all, _worker


def test_slots_are_claimed_once_freed_on_release_and_retaken_after_the_lease(
    sqlite_store: Store,
) -> None:
    a = claim_slot(sqlite_store, 30, prefix="h")
    b = claim_slot(sqlite_store, 30, prefix="h")
    assert (a, b) == ("h-0", "h-1")
    assert {"h-0", "h-1"} <= live_executors(sqlite_store, 30)
    release(sqlite_store, a)
    assert "h-0" not in live_executors(sqlite_store, 30)
    assert claim_slot(sqlite_store, 30, prefix="h") == "h-0"  # a clean shutdown frees it
    # h-1 stops renewing (kill -9): once its lease lapsed, its slot is free again.
    old = utcnow() - timedelta(seconds=31)
    with sqlite_store.session(write=True) as s:
        s.execute(
            sa.update(RuntimeExecutor)
            .where(RuntimeExecutor.executor_id == "h-1")
            .values(heartbeat_at=old)
        )
    assert "h-1" not in live_executors(sqlite_store, 30)
    assert claim_slot(sqlite_store, 30, prefix="h") == "h-1"
    renew(sqlite_store, "explicit-id")
    assert "explicit-id" in live_executors(sqlite_store, 30)


def test_a_slot_whose_holder_died_on_this_host_is_free_at_once(sqlite_store: Store) -> None:
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert claim_slot(sqlite_store, 30, prefix="d") == "d-0"
        with sqlite_store.session(write=True) as s:  # d-0 is the sleeper's, lease fresh
            s.execute(
                sa.update(RuntimeExecutor)
                .where(RuntimeExecutor.executor_id == "d-0")
                .values(pid=holder.pid)
            )
        assert "d-0" in live_executors(sqlite_store, 30)
        assert claim_slot(sqlite_store, 30, prefix="d") == "d-1"  # its holder runs
    finally:
        holder.kill()
        holder.wait()
    # kill -9 of the holder: its lease is void now, not 30 s later.
    assert "d-0" not in live_executors(sqlite_store, 30)
    assert claim_slot(sqlite_store, 30, prefix="d") == "d-0"


def test_a_run_never_handed_to_a_worker_is_failed_with_the_reason(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with sqlite_store.session(write=True) as s:
        s.add(
            RunRecord(
                id="lost-run",
                agent_name="x",
                agent_version=1,
                status="queued",
                inputs={},
                principal="",
                created_at=utcnow() - timedelta(minutes=5),
            )
        )
    rt = Runtime(sqlite_store, Services(), data_dir=tmp_path, lease_s=30)
    rt.launch()
    try:
        report = rt.sweep()
        assert report["failed"] == ["lost-run"]
        run = rt.show("lost-run", steps=False)
        assert run["status"] == "failed"
        assert "never handed to a worker" in run["error"]
        assert [r["status"] for r in rt.list_runs()] == ["failed"]
        assert rt.sweep()["failed"] == []  # settled once
    finally:
        rt.shutdown()


def test_one_status_everywhere_running_waiting_and_a_cancel_through_dbos(
    sqlite_store: Store, tmp_path: Path
) -> None:
    tools = PythonTools()
    tools.add("noop", lambda: "ok")
    rt = Runtime(sqlite_store, Services(tools=tools), data_dir=tmp_path)
    rt.launch()
    try:
        rt.registry.register(
            load_spec(
                {
                    "name": "gate",
                    "steps": [
                        {"id": "ok", "kind": "approval", "prompt": "go?", "timeout_s": 1},
                        {"id": "go", "kind": "tool", "tool": "noop", "after": ["ok"]},
                    ],
                }
            )
        )
        run = rt.start("gate", {})
        assert run["status"] == "waiting"
        assert [r["status"] for r in rt.list_runs()] == ["waiting"]
        # Cancelled behind daytwo's back (DBOS's own API): show and list agree at once.
        DBOS.cancel_workflow(run["id"])
        assert rt.show(run["id"], steps=False)["status"] == "cancelled"
        assert [r["status"] for r in rt.list_runs()] == ["cancelled"]
        time.sleep(1.5)  # the workflow's wait times out and it stops (no thread left behind)
        assert rt.show(run["id"], steps=False)["status"] == "cancelled"
    finally:
        rt.shutdown()


def _executions_by_pid(tmp_path: Path) -> dict[int, int]:
    with sqlite3.connect(tmp_path / "effects.db", timeout=30) as conn:
        rows = conn.execute("SELECT pid, count(*) FROM executions GROUP BY pid").fetchall()
    return {int(pid): int(n) for pid, n in rows}


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_killed_workers_runs_are_taken_over_without_a_restart(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """kill -9 of one of two workers: the other finishes its runs after the lease, alone."""
    from rt_worker_services import init_effects

    (tmp_path / "data").mkdir()
    init_effects(str(tmp_path / "effects.db"))
    if backend == "postgres":
        url = str(request.getfixturevalue("pg_url"))
        dbos_schema = url.rsplit("%3D", 1)[1] + "_dbos"
    else:
        url = f"sqlite:///{tmp_path / 'data' / 'daytwo.db'}"
        dbos_schema = "dbos"
    store = Store(url)
    store.upgrade()
    rt = Runtime(store, Services(), data_dir=tmp_path / "data", dbos_schema=dbos_schema)
    rt.registry.register(load_spec(SPEC))
    env = _env(tmp_path, url if backend == "postgres" else None)
    env["DAYTWO_EXECUTOR_LEASE_S"] = "2"
    a = _worker(env, "worker-a", dbos_schema, 4)
    _ready(a)
    b = _worker(env, "worker-b", dbos_schema, 4)
    _ready(b)
    ids = [rt.enqueue("effects", {}) for _ in range(8)]
    try:
        deadline = time.monotonic() + 120
        while _executions_by_pid(tmp_path).get(a.pid, 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        a.send_signal(signal.SIGKILL)
        a.wait()
        killed_at = time.monotonic()
        unfinished = [i for i in ids if rt.show(i, steps=False)["status"] != "succeeded"]
        status = _wait_all(rt, ids, timeout=120)
        recovered_s = time.monotonic() - killed_at
    finally:
        errs = []
        for p in (a, b):
            p.terminate()
            errs.append(p.communicate(timeout=30)[1].decode()[-1500:])
    assert unfinished, "the kill interrupted nothing"
    assert set(status.values()) == {"succeeded"}, (status, errs)
    effects, _ = _check_effects(tmp_path, ids)
    assert effects == 8 * N_STEPS
    assert _executions_by_pid(tmp_path).get(b.pid, 0) > 0
    # Nobody restarted worker-a: worker-b took its runs over within a few leases.
    assert recovered_s < 60, recovered_s
    rt.close()
    store.dispose()
