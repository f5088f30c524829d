"""Crash tests with real worker processes: kill -9 mid-run, resume, exactly-once effects."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daytwo.runtime import Runtime, Services, load_spec
from daytwo.runtime.steps import idempotency_key
from daytwo.store import Store

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from rt_worker_services import EFFECTS_ENV, init_effects  # noqa: E402

N_STEPS = 6
SPEC = {
    "name": "effects",
    "steps": [
        {
            "id": f"s{i}",
            "kind": "tool",
            "tool": "effect",
            "arguments": {"n": i},
            **({"after": [f"s{i - 1}"]} if i else {}),
        }
        for i in range(N_STEPS)
    ],
}
# The same effects as one wave of independent steps, fast enough to be held for one
# write: a kill mid-wave loses the wave's unwritten rows, never an effect.
FAN_OUT = {
    "name": "effects",
    "steps": [
        {"id": f"s{i}", "kind": "tool", "tool": "effect", "arguments": {"n": i, "delay": 0.002}}
        for i in range(N_STEPS)
    ],
}


def _worker(
    env: dict[str, str], executor: str = "local", schema: str = "dbos", concurrency: int = 4
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daytwo",
            "runs",
            "worker",
            "--services",
            "rt_worker_services:services",
            "--executor-id",
            executor,
            "--concurrency",
            str(concurrency),
            "--dbos-schema",
            schema,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert b"ready" in line, line


def _env(tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTWO_")}
    env["DAYTWO_DATA_DIR"] = str(tmp_path / "data")
    if database_url:
        env["DAYTWO_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env[EFFECTS_ENV] = str(tmp_path / "effects.db")
    return env


def _wait_all(rt: Runtime, ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = {i: rt.show(i, steps=False)["status"] for i in ids}
        if all(s in {"succeeded", "failed", "cancelled"} for s in status.values()):
            return status
        time.sleep(0.2)
    return status


def _executions(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "effects.db", timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM executions").fetchone()[0])


def _wait_executions(tmp_path: Path, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _executions(tmp_path) < target:
        time.sleep(0.05)


def _check_effects(tmp_path: Path, ids: list[str]) -> tuple[int, int]:
    with sqlite3.connect(tmp_path / "effects.db") as conn:
        effects = conn.execute("SELECT key FROM effects").fetchall()
        executions = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
    keys = [k for (k,) in effects]
    expected = {idempotency_key(r, f"s{i}") for r in ids for i in range(N_STEPS)}
    # Every (run, step) had its effect exactly once, under the key derived from (run, step).
    assert len(keys) == len(set(keys)), "an effect was applied twice"
    assert set(keys) == expected
    return len(keys), executions


@pytest.fixture
def crash_store(tmp_path: Path) -> Iterator[Store]:
    (tmp_path / "data").mkdir()
    store = Store(f"sqlite:///{tmp_path / 'data' / 'daytwo.db'}")
    store.upgrade()
    init_effects(str(tmp_path / "effects.db"))
    yield store
    store.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("spec", [SPEC, FAN_OUT], ids=["chain", "fan_out"])
def test_kill_9_during_20_runs_every_run_completes_exactly_once(
    tmp_path: Path, crash_store: Store, spec: dict[str, Any]
) -> None:
    rt = Runtime(crash_store, Services(), data_dir=tmp_path / "data")
    rt.registry.register(load_spec(spec))
    ids = [rt.enqueue("effects", {}) for _ in range(20)]
    env = _env(tmp_path)
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        # Kill at a random point of progress, not of wall time (which depends on the
        # machine's load): after 3-20 more step executions than before this worker.
        start = _executions(tmp_path)
        proc = _worker(env)
        _wait_executions(tmp_path, start + rng.randint(3, 20), timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    done_mid = sum(rt.show(i, steps=False)["status"] == "succeeded" for i in ids)
    proc = _worker(env)
    try:
        status = _wait_all(rt, ids, timeout=120)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    rt.close()
    assert set(status.values()) == {"succeeded"}, (status, err.decode()[-2000:])
    effects, executions = _check_effects(tmp_path, ids)
    assert effects == 20 * N_STEPS
    # The kills really interrupted runs: some were still unfinished after them.
    assert done_mid < 20
    assert kills == 4
    assert executions >= effects


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_share_runs_on_postgres(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "data").mkdir()
    init_effects(str(tmp_path / "effects.db"))
    store = Store(pg_url)
    store.upgrade()
    schema = pg_url.rsplit("%3D", 1)[1]
    rt = Runtime(store, Services(), dbos_schema=f"{schema}_dbos")
    rt.registry.register(load_spec(SPEC))
    env = _env(tmp_path, pg_url)
    dbos_schema = f"{schema}_dbos"
    a = _worker(env, "worker-a", dbos_schema, 2)
    _ready(a)
    b = _worker(env, "worker-b", dbos_schema, 2)
    _ready(b)
    ids = [rt.enqueue("effects", {}) for _ in range(16)]
    try:
        # Kill one worker mid-way; restart it under the same executor id to recover its runs.
        time.sleep(1.0)
        a.send_signal(signal.SIGKILL)
        a.wait()
        done_mid = sum(rt.show(i, steps=False)["status"] == "succeeded" for i in ids)
        a = _worker(env, "worker-a", dbos_schema, 2)
        status = _wait_all(rt, ids, timeout=120)
    finally:
        errs = []
        for p in (a, b):
            p.terminate()
            errs.append(p.communicate(timeout=30)[1].decode()[-1500:])
    assert done_mid < 16
    assert set(status.values()) == {"succeeded"}, status
    _check_effects(tmp_path, ids)
    with sqlite3.connect(tmp_path / "effects.db") as conn:
        pids = conn.execute("SELECT count(DISTINCT pid) FROM executions").fetchone()[0]
    assert pids >= 2  # both worker processes did work
    rt.close()
    store.dispose()
