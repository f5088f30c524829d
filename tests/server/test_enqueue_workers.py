"""Enqueue-only API processes and separate run workers (``DAYTWO_SERVE_RUNS=enqueue``).

The API process records a run and queues it; it never executes a step. A ``daytwo
runs worker`` process dequeues and runs it; killed in the middle of a step, another worker
takes the run over once the dead one's lease lapsed and completes it from its last
checkpoint. Over SQLite the mode is refused with one clear line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .test_cli import _setup_db, cli, start_server, stop_server
from .test_workers import AGENT, FINAL, _calls, _register_gate_tools, _wait


def _start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "daytwo", "runs", "worker", "--concurrency", "2"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once the worker dequeues runs
    if "ready" not in line:
        proc.kill()
        raise AssertionError(f"worker did not start: {line}{proc.communicate()}")
    return proc


@pytest.mark.slow
@pytest.mark.postgres
def test_api_queues_runs_and_a_worker_killed_mid_run_is_replaced(
    pg_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {
        "DAYTWO_DATABASE_URL": pg_url,
        "DAYTWO_DATA_DIR": str(tmp_path / "data"),
        "DAYTWO_SERVE_RUNS": "enqueue",
        # This deployment's own DBOS schema (dropped with pg_url's): the API and the
        # workers find each other through it, and nothing else in database test does.
        "DAYTWO_DBOS_SCHEMA": pg_url.rsplit("%3D", 1)[1] + "_dbos",
        "GATE_TOOLS_DIR": str(gate),
        "DAYTWO_EXECUTOR_LEASE_S": "3",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    key = _setup_db(env, "acme")
    other = _setup_db(env, "globex")
    auth = {"Authorization": f"Bearer {key}"}
    _register_gate_tools(pg_url)
    api, base = start_server(env)
    workers: list[subprocess.Popen[str]] = []
    try:
        r = httpx.post(f"{base}/api/v1/agents", json={"spec": AGENT}, headers=auth)
        assert r.status_code == 201, r.text

        # No worker yet: the runs are recorded and queued, and nothing executes them.
        started = []
        for account in ("acct-1", "acct-2"):
            r = httpx.post(
                f"{base}/api/v1/runs",
                json={"agent": "gatekeeper", "inputs": {"account": account}},
                headers=auth,
            )
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "queued"
            started.append(r.json()["id"])
        run_id, cancelled_id = started
        time.sleep(1.0)
        run = httpx.get(f"{base}/api/v1/runs/{run_id}", headers=auth).json()
        assert run["status"] == "queued", run
        assert _calls(gate, "mark") == []
        # Tenant isolation holds in this mode: another tenant cannot see the run.
        r = httpx.get(f"{base}/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 404, r.text
        # A queued run is cancelled through the API process, before any worker sees it.
        r = httpx.post(f"{base}/api/v1/runs/{cancelled_id}/cancel", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "cancelled"

        # Worker A dequeues the run and stops in its second step (behind the gate).
        workers.append(_start_worker(env))
        first = workers[0]
        _wait(lambda: _calls(gate, "gated"), "worker A to reach the second step")
        assert _calls(gate, "mark") == [first.pid]
        assert _calls(gate, "gated") == [first.pid]
        run = httpx.get(f"{base}/api/v1/runs/{run_id}", headers=auth).json()
        assert run["status"] == "running", run

        workers.append(_start_worker(env))
        second = workers[1]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        (gate / "open").touch()

        def final() -> dict[str, Any] | None:
            got = httpx.get(f"{base}/api/v1/runs/{run_id}", headers=auth).json()
            return got if got["status"] in FINAL else None

        done = _wait(final, "worker B to take the run over and finish it", timeout=90)
        assert done["status"] == "succeeded", (done["error"], done["checkpoints"])
        assert done["outputs"]["answer"] == {"account": "acct-1", "approved": True}
        # The finished step ran once (on A), the interrupted one again on B; the API
        # process ran nothing.
        assert _calls(gate, "mark") == [first.pid]
        assert _calls(gate, "gated") == sorted([first.pid, second.pid])
        names = [cp["name"] for cp in done["checkpoints"]]
        assert names.count("step:first") == 1
        assert names.count("step:second") == 1
        cancelled = httpx.get(f"{base}/api/v1/runs/{cancelled_id}", headers=auth).json()
        assert cancelled["status"] == "cancelled"
        assert not any(p.name.endswith("acct-2") for p in gate.iterdir())
    finally:
        stop_server(api)
        for proc in workers:
            stop_server(proc, signal.SIGTERM)


def test_enqueue_mode_over_sqlite_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(capsys, "db", "upgrade")[0] == 0
    monkeypatch.setenv("DAYTWO_SERVE_RUNS", "enqueue")
    code, _, err = cli(capsys, "serve", "--port", "0")
    assert code == 2
    assert "DAYTWO_SERVE_RUNS=enqueue needs PostgreSQL" in err
