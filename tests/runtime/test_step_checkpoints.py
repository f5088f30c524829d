"""Step checkpoints on a SQLite system database (``dbos_system.checkpointed_step``).

The runtime writes its steps' rows itself, with DBOS's checks: these tests hold it to
them where the kill -9 tests cannot reach (ownership moving mid-step, the rows DBOS
reads back).
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from daytwo.runtime import PythonTools, Runtime, load_spec


def _two_steps(runtime: Runtime) -> None:
    runtime.registry.register(
        load_spec(
            {
                "name": "two",
                "steps": [
                    {"id": "a", "kind": "tool", "tool": "first"},
                    {"id": "b", "kind": "tool", "tool": "second", "after": ["a"]},
                ],
            }
        )
    )


def _waiting_for(workflow_id: str) -> bool:
    """Whether a thread of this process still waits for the workflow's outcome."""
    for frame in sys._current_frames().values():
        while frame is not None:
            if frame.f_code.co_name == "await_workflow_result" and (
                frame.f_locals.get("workflow_id") == workflow_id
            ):
                return True
            frame = frame.f_back  # type: ignore[assignment]
    return False


def test_an_execution_that_lost_the_workflow_records_nothing_more(
    runtime: Runtime, tools: PythonTools, tmp_path: Path
) -> None:
    """Another execution took the workflow over while step ``a`` ran (a takeover writes
    a new owner): ``a``'s outcome is not recorded and ``b`` never runs here."""
    ran: list[str] = []

    def first(idempotency_key: str) -> int:
        ran.append("a")
        with sqlite3.connect(tmp_path / "dbos.sqlite") as conn:
            conn.execute("UPDATE workflow_status SET owner_xid = 'another-execution'")
        return 1

    def second(idempotency_key: str) -> int:
        ran.append("b")
        return 2

    tools.add("first", first)
    tools.add("second", second)
    _two_steps(runtime)
    run_id = runtime.start("two", {}, wait=False)["id"]
    deadline = time.monotonic() + 10
    while "a" not in ran and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # time enough for b, had the execution gone on
    with sqlite3.connect(tmp_path / "dbos.sqlite") as conn:
        rows = conn.execute(
            "SELECT function_name FROM operation_outputs WHERE workflow_uuid = ?", (run_id,)
        ).fetchall()
    assert ran == ["a"]
    assert rows == []
    # The losing execution now waits for the owner's outcome (DBOS's rule): the stand-in
    # owner never writes one, so end the workflow here or that wait outlives the test.
    with sqlite3.connect(tmp_path / "dbos.sqlite") as conn:
        conn.execute("UPDATE workflow_status SET status = 'CANCELLED'")
    deadline = time.monotonic() + 10
    while _waiting_for(run_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _waiting_for(run_id)


def test_checkpoints_read_back_through_dbos_and_replay_without_running(
    runtime: Runtime, tools: PythonTools
) -> None:
    """The rows are DBOS's own: its step listing shows them, and a replay of the workflow
    (a resumed run) returns their outcomes without running the steps again."""
    ran: list[str] = []
    tools.add("first", lambda idempotency_key: ran.append("a") or 1)
    tools.add("second", lambda idempotency_key: ran.append("b") or 2)
    _two_steps(runtime)
    run = runtime.start("two", {})
    assert run["status"] == "succeeded"
    shown = runtime.show(run["id"])
    assert [(c["name"], c["status"]) for c in shown["checkpoints"]] == [
        ("step:a", "ok"),
        ("step:b", "ok"),
    ]
    from dbos import DBOS

    DBOS.fork_workflow(run["id"], 2).get_result()  # replays a, runs b again
    assert ran == ["a", "b", "b"]
