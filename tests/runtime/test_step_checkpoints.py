"""Step checkpoints on a SQLite system database (``dbos_system.checkpointed_step``).

The runtime writes its steps' rows itself, with DBOS's checks: these tests hold it to
them where the kill -9 tests cannot reach (ownership moving mid-step, the rows DBOS
reads back, a wave of independent steps written at once and cut short).
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daytwo.runtime import PythonTools, Runtime, dbos_system, load_spec


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


def _fan_out(runtime: Runtime, n: int) -> None:
    runtime.registry.register(
        load_spec(
            {
                "name": "fan",
                "steps": [
                    {"id": f"b{i}", "kind": "tool", "tool": "probe", "arguments": {"i": i}}
                    for i in range(n)
                ],
            }
        )
    )


def _rows(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "dbos.sqlite") as conn:
        return int(conn.execute("SELECT count(*) FROM operation_outputs").fetchone()[0])


@pytest.mark.parametrize("window_s", [60.0, 0.0])
def test_a_wave_of_independent_steps_is_written_at_once_within_the_window(
    runtime: Runtime,
    tools: PythonTools,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    window_s: float,
) -> None:
    """Independent steps hold their rows for one write while they are quick (within the
    window); steps slower than the window are written one by one, as a chain's are. Each
    keeps its own checkpoint, name and idempotency key either way."""
    monkeypatch.setattr(dbos_system, "GROUP_WINDOW_S", window_s)
    seen: dict[int, int] = {}
    keys: set[str] = set()

    def probe(i: int, idempotency_key: str) -> int:
        seen[i] = _rows(tmp_path)  # the rows written when step i starts
        keys.add(idempotency_key)
        return i * 10

    tools.add("probe", probe)
    _fan_out(runtime, 4)
    run = runtime.start("fan", {})
    assert run["status"] == "succeeded"
    assert run["outputs"]["steps"] == {f"b{i}": i * 10 for i in range(4)}
    shown = runtime.show(run["id"])
    assert [(c["name"], c["status"]) for c in shown["checkpoints"]] == [
        (f"step:b{i}", "ok") for i in range(4)
    ]
    assert len(keys) == 4
    if window_s:
        assert seen == dict.fromkeys(range(4), 0)  # one write, after the wave
    else:
        assert seen == {i: i for i in range(4)}  # one write per step


def test_a_wave_cut_short_runs_its_unwritten_steps_again_with_the_same_keys(
    runtime: Runtime, tools: PythonTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel in the middle of a wave: the rows the wave held are not written (the
    workflow is no longer this execution's), so nothing of it is acknowledged; the
    resumed run runs those steps again under the same idempotency keys and ends with
    the same result, and a fork from the middle of the wave replays its first steps."""
    monkeypatch.setattr(dbos_system, "GROUP_WINDOW_S", 60.0)
    calls: list[tuple[int, str]] = []
    holder: dict[str, str] = {}

    def probe(i: int, idempotency_key: str) -> int:
        calls.append((i, idempotency_key))
        if i == 2 and len(calls) == 3:
            runtime.cancel(holder["id"])
        return i * 10

    tools.add("probe", probe)
    _fan_out(runtime, 5)
    run_id = "wave-cut-short"
    holder["id"] = run_id
    runtime.start("fan", {}, run_id=run_id, wait=False)
    deadline = time.monotonic() + 10
    while runtime.show(run_id, steps=False)["status"] != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    while _waiting_for(run_id) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert runtime.show(run_id)["checkpoints"] == []  # the wave's rows were not written
    first = dict(calls)
    resumed = runtime.resume(run_id, timeout_s=30)
    assert resumed["status"] == "succeeded"
    assert resumed["outputs"]["steps"] == {f"b{i}": i * 10 for i in range(5)}
    assert all(first[i] == key for i, key in calls if i in first)  # same key, every run
    assert sorted({i for i, _ in calls}) == list(range(5))

    calls.clear()
    fork = runtime.fork(run_id, 3, timeout_s=30)
    assert fork["status"] == "succeeded"
    assert [i for i, _ in calls] == [2, 3, 4]  # b0 and b1 replayed from their rows
    assert fork["outputs"]["steps"] == resumed["outputs"]["steps"]


def _outcome_rows(tmp_path: Path, run_id: str) -> tuple[Any, ...]:
    with sqlite3.connect(tmp_path / "dbos.sqlite") as conn:
        status = conn.execute(
            "SELECT status, owner_xid, deduplication_id, completed_at IS NOT NULL "
            "FROM workflow_status WHERE workflow_uuid = ?",
            (run_id,),
        ).fetchone()
        output = conn.execute(
            "SELECT output IS NOT NULL, error FROM workflow_output WHERE workflow_uuid = ?",
            (run_id,),
        ).fetchone()
    return status, output


def test_prepared_outcomes_write_what_dbos_writes(
    runtime: Runtime, tools: PythonTools, tmp_path: Path
) -> None:
    """A workflow's outcome through the prepared statements leaves the rows DBOS's own
    method leaves, and a write the execution does not own lands nowhere."""
    from dbos._dbos import _get_dbos_instance

    sys_db = _get_dbos_instance()._sys_db
    assert "_update_workflow_outcome_in_transaction" in vars(sys_db)  # prepared at launch
    tools.add("first", lambda idempotency_key: 1)
    tools.add("second", lambda idempotency_key: 2)
    _two_steps(runtime)
    prepared = runtime.start("two", {})
    del sys_db._update_workflow_outcome_in_transaction  # DBOS's own method again
    try:
        own = runtime.start("two", {})
    finally:
        assert dbos_system.prepare_outcomes()
    assert prepared["status"] == own["status"] == "succeeded"
    assert _outcome_rows(tmp_path, prepared["id"]) == _outcome_rows(tmp_path, own["id"])
    assert _outcome_rows(tmp_path, own["id"]) == (("SUCCESS", None, None, 1), (1, None))
    # Not pending any more, or another owner's: nothing is written.
    outcome = sys_db._update_workflow_outcome_in_transaction
    assert not outcome(prepared["id"], "ERROR", output=None, error="x", owner_xid=None)
    with sqlite3.connect(tmp_path / "dbos.sqlite") as conn:
        conn.execute(
            "UPDATE workflow_status SET status = 'PENDING', owner_xid = 'a' "
            "WHERE workflow_uuid = ?",
            (prepared["id"],),
        )
    assert not outcome(prepared["id"], "ERROR", output=None, error="x", owner_xid="b")
    assert _outcome_rows(tmp_path, prepared["id"])[1] == (1, None)
    assert outcome(prepared["id"], "ERROR", output=None, error="x", owner_xid="a")
    assert _outcome_rows(tmp_path, prepared["id"]) == (("ERROR", None, None, 1), (0, "x"))
