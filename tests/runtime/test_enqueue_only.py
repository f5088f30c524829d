"""An enqueue-only runtime (an API process) steers runs that another runtime executes.

The executing runtime is launched here (DBOS is a process singleton); the enqueue-only
one never launches DBOS and reaches the runs through a client on the same PostgreSQL
system database, as an API process next to ``daytwo runs worker`` processes does.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from daytwo.exceptions import ConfigError, ConflictError
from daytwo.runtime import PythonTools, Runtime, Services, load_spec
from daytwo.store import Store

pytestmark = pytest.mark.postgres


@pytest.fixture
def pair(pg_url: str, tools: PythonTools) -> Iterator[tuple[Runtime, Runtime]]:
    store = Store(pg_url)
    store.upgrade()
    dbos_schema = f"{pg_url.rsplit('%3D', 1)[1]}_dbos"
    worker = Runtime(store, Services(tools=tools), dbos_schema=dbos_schema).launch()
    api = Runtime(store, Services(tools=tools), dbos_schema=dbos_schema, enqueue_only=True)
    api.launch()
    try:
        yield worker, api
    finally:
        api.shutdown()
        worker.shutdown()
        with store.engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{dbos_schema}" CASCADE'))
        store.dispose()


def _until(api: Runtime, run_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = api.show(run_id, steps=False)
        if run["status"] == status:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never became {status}: {run}")


def test_start_is_queued_and_approvals_reach_the_worker(
    pair: tuple[Runtime, Runtime], tools: PythonTools
) -> None:
    worker, api = pair
    refunds: list[str] = []
    tools.add("refund", lambda idempotency_key: refunds.append(idempotency_key) or "refunded")
    api.registry.register(
        load_spec(
            {
                "name": "appr",
                "steps": [
                    {"id": "ok", "kind": "approval", "prompt": "refund?"},
                    {"id": "pay", "kind": "tool", "tool": "refund", "after": ["ok"]},
                ],
            }
        )
    )
    run = api.start("appr", {}, wait=False, principal="key:k1@acme")
    assert run["status"] == "queued"
    assert run["principal"] == "key:k1@acme"
    waiting = api.wait(run["id"], timeout_s=30)
    assert waiting["status"] == "waiting"
    assert refunds == []
    api.approve(run["id"], "ok", by="alice", note="fine")
    done = api.wait(run["id"], timeout_s=30)
    assert done["status"] == "succeeded", done
    assert len(refunds) == 1
    assert done["outputs"]["steps"]["ok"]["by"] == "alice"
    # The same run id cannot start a second run.
    with pytest.raises(ConflictError, match="exists already"):
        api.start("appr", {}, wait=False, run_id=run["id"])
    assert worker.executor_id is not None
    assert api.executor_id is None  # it holds no executor slot


def test_cancel_resume_and_fork_through_the_client(
    pair: tuple[Runtime, Runtime], tools: PythonTools
) -> None:
    _worker, api = pair
    executed: list[str] = []

    def slow(x: str, idempotency_key: str) -> str:
        executed.append(x)
        time.sleep(0.15)
        return x

    tools.add("slow", slow)
    steps: list[dict[str, Any]] = [
        {"id": f"s{i}", "kind": "tool", "tool": "slow", "arguments": {"x": f"s{i}"}}
        for i in range(5)
    ]
    for prev, step in itertools.pairwise(steps):
        step["after"] = [prev["id"]]
    api.registry.register(load_spec({"name": "chain", "steps": steps}))
    run = api.start("chain", {}, wait=False)
    _until(api, run["id"], "running")
    while len(executed) < 2:
        time.sleep(0.01)
    api.cancel(run["id"])
    assert api.show(run["id"], steps=False)["status"] == "cancelled"
    done = api.resume(run["id"], wait=True, timeout_s=30)
    assert done["status"] == "succeeded", done
    assert sorted(set(executed)) == [f"s{i}" for i in range(5)]
    before = len(executed)
    forked = api.fork(run["id"], 4, wait=True, timeout_s=30)
    assert forked["status"] == "succeeded", forked
    assert forked["forked_from"] == run["id"]
    assert executed[before:] == ["s3", "s4"]  # steps 1-3 reused, not run again


def test_enqueue_only_over_sqlite_is_refused(sqlite_store: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="need PostgreSQL"):
        Runtime(sqlite_store, data_dir=tmp_path, enqueue_only=True)
