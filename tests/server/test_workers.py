"""Several server processes over one database act as one service, and survive kill -9.

A run started through one server, whose process is killed in the middle of a step,
is taken over by another server once the dead one's executor lease lapsed: it
completes from its last checkpoint (the finished step does not run again; the
interrupted one does), without anyone resuming it. The same holds for one uvicorn
worker of ``daytwo serve --workers 2`` killed with runs in flight.
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

from .test_cli import _setup_db, start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FINAL = {"succeeded", "failed", "cancelled"}

AGENT = {
    "name": "gatekeeper",
    "steps": [
        {
            "id": "first",
            "kind": "tool",
            "tool": "mark_account",
            "arguments": {"account": "{{ input.account }}"},
        },
        {
            "id": "second",
            "kind": "tool",
            "tool": "gated_approval",
            "arguments": {"account": "{{ input.account }}"},
        },
    ],
    "output": "second",
}


def _tool(name: str, function: str, field: str) -> dict[str, Any]:
    return {
        "name": name,
        "capability": f"test.{name}",
        "version": "1.0.0",
        "description": f"{name} (cross-worker test)",
        "input_schema": {
            "type": "object",
            "required": ["account"],
            "additionalProperties": False,
            "properties": {"account": {"type": "string", "minLength": 1}},
        },
        "output_schema": {
            "type": "object",
            "required": ["account", field],
            "properties": {"account": {"type": "string"}, field: {"type": "boolean"}},
        },
        "backend": {"type": "python", "callable": f"gate_tools:{function}"},
    }


def _calls(gate: Path, kind: str) -> list[int]:
    """The pids of the processes that ran ``kind`` (one entry per call)."""
    return sorted(int(p.name.split("-")[1]) for p in gate.glob(f"{kind}-*"))


def _wait(predicate: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_killed_on_one_server_resumes_on_another(pg_url: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {
        "DAYTWO_DATABASE_URL": pg_url,
        "DAYTWO_DATA_DIR": str(tmp_path / "data"),  # shared, as on a shared volume
        "GATE_TOOLS_DIR": str(gate),
        "DAYTWO_EXECUTOR_LEASE_S": "4",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    key = _setup_db(env, "acme")
    auth = {"Authorization": f"Bearer {key}"}
    first, url_a = start_server(env)
    second = None
    try:
        second, url_b = start_server(env)
        _register_gate_tools(pg_url, agent="gatekeeper")
        r = httpx.post(f"{url_b}/api/v1/agents", json={"spec": AGENT}, headers=auth)
        assert r.status_code == 201, r.text

        # Started through server A, which dies in the middle of the second step.
        r = httpx.post(
            f"{url_a}/api/v1/runs",
            json={"agent": "gatekeeper", "inputs": {"account": "acct-7"}},
            headers=auth,
        )
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        _wait(lambda: _calls(gate, "gated"), "server A to reach the second step")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)

        killed_at = time.monotonic()

        # Server B sees the interrupted run, its first step checkpointed; while the dead
        # server's lease lasts, nobody runs it.
        run = httpx.get(f"{url_b}/api/v1/runs/{run_id}", headers=auth).json()
        assert run["status"] == "running", run
        assert [cp["name"] for cp in run["checkpoints"]][:1] == ["step:first"], run
        assert _calls(gate, "gated") == [first.pid]

        # Once the lease lapsed, server B takes the run over by itself and completes it.
        (gate / "open").touch()
        done = _wait(
            lambda: (
                run
                if (run := httpx.get(f"{url_b}/api/v1/runs/{run_id}", headers=auth).json())[
                    "status"
                ]
                in FINAL
                else None
            ),
            "the run to be taken over and finish",
        )
        taken_over_s = time.monotonic() - killed_at
        assert done["status"] == "succeeded", (
            done["error"],
            done["decisions"],
            done["checkpoints"],
        )
        assert done["outputs"]["answer"] == {"account": "acct-7", "approved": True}
        # The finished step ran once (on A); the interrupted one ran again on B.
        assert _calls(gate, "mark") == [first.pid]
        assert _calls(gate, "gated") == sorted([first.pid, second.pid])
        names = [cp["name"] for cp in done["checkpoints"]]
        assert names.count("step:first") == 1
        assert names.count("step:second") == 1
        assert taken_over_s < 45, taken_over_s
    finally:
        stop_server(first)
        if second is not None:
            stop_server(second)


def _register_gate_tools(url: str, agent: str | None = None) -> None:
    """Python backends: the server operator registers them on the host and shares them
    with tenant acme (never over the API); ``agent`` also gets a gateway principal."""
    from daytwo.gateway import Gateway
    from daytwo.server.ownership import grant
    from daytwo.store import Store

    store = Store(url)
    try:
        gateway = Gateway(store)
        for definition in (
            _tool("mark_account", "mark", "seen"),
            _tool("gated_approval", "gated", "approved"),
        ):
            gateway.register(definition)
            grant(store, "tool", definition["name"], "acme")
        if agent is not None:
            gateway.create_agent(agent, ["mark_account", "gated_approval"])
    finally:
        store.dispose()


def _children(pid: int) -> list[int]:
    """The uvicorn worker processes of a ``daytwo serve --workers N`` process."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:  # not multiprocessing's resource tracker
                out.append(int(child))
    return out


def _two_workers(pid: int) -> list[int] | None:
    workers = _children(pid)
    return workers if len(workers) == 2 else None


def _accounts(gate: Path, kind: str) -> list[str]:
    """The account of every call of ``kind`` (one entry per call)."""
    return sorted(p.name.split("-", 3)[3] for p in gate.glob(f"{kind}-*"))


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_twenty_runs_survive_three_worker_kills_and_a_server_kill(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """serve --workers 2, 20 runs; kill -9 a busy worker 3 times, then the whole server."""
    gate = tmp_path / "gate"
    gate.mkdir()
    url = (
        str(request.getfixturevalue("pg_url"))
        if backend == "postgres"
        else f"sqlite:///{tmp_path / 'data' / 'daytwo.db'}"
    )
    (tmp_path / "data").mkdir()
    env = {
        "DAYTWO_DATABASE_URL": url,
        "DAYTWO_DATA_DIR": str(tmp_path / "data"),
        "GATE_TOOLS_DIR": str(gate),
        "DAYTWO_EXECUTOR_LEASE_S": "3",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    key = _setup_db(env, "acme")
    auth = {"Authorization": f"Bearer {key}"}
    _register_gate_tools(url)
    server, base = start_server(env, "--workers", "2")
    victims: list[int] = []
    try:
        r = httpx.post(f"{base}/api/v1/agents", json={"spec": AGENT}, headers=auth)
        assert r.status_code == 201, r.text
        ids = []
        for n in range(20):
            r = httpx.post(
                f"{base}/api/v1/runs",
                json={"agent": "gatekeeper", "inputs": {"account": f"acct{n}"}},
                headers=auth,
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        for _ in range(3):
            # A worker holding runs at the gated step dies; uvicorn replaces it and the
            # replacement takes the dead worker's slot (and its runs) over.
            workers = _wait(lambda: _two_workers(server.pid), "two workers")
            busy = _wait(
                lambda w=workers: [p for p in w if p in _calls(gate, "gated")] or None,
                "a busy worker",
            )
            os.kill(busy[0], signal.SIGKILL)
            victims.append(busy[0])
        # Then the whole server, with every run still behind the gate.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        server, base = start_server(env, "--workers", "2")
        killed_at = time.monotonic()
        (gate / "open").touch()

        def all_final() -> list[dict[str, Any]] | None:
            runs = [httpx.get(f"{base}/api/v1/runs/{i}", headers=auth).json() for i in ids]
            return runs if all(r["status"] in FINAL for r in runs) else None

        runs = _wait(all_final, "every run to finish after the kills", timeout=180)
        recovered_s = time.monotonic() - killed_at
    finally:
        stop_server(server)
    assert [r["status"] for r in runs] == ["succeeded"] * 20, [r["error"] for r in runs]
    for run in runs:
        names = [cp["name"] for cp in run["checkpoints"]]
        assert names.count("step:first") == 1, names
        assert names.count("step:second") == 1, names
        assert run["outputs"]["answer"] == {"account": run["inputs"]["account"], "approved": True}
    # The backend saw every run's calls; a call ran again only where a kill interrupted it
    # (the gated calls in flight in the killed processes), never a finished one.
    accounts = sorted(f"acct{n}" for n in range(20))
    assert sorted(set(_accounts(gate, "gated"))) == accounts
    assert sorted(set(_accounts(gate, "mark"))) == accounts
    gated_in_victims = sum(_calls(gate, "gated").count(v) for v in victims)
    assert len(_calls(gate, "gated")) <= 20 + gated_in_victims + 20  # + the server kill's
    assert recovered_s < 90, recovered_s
    # The audit chain, written by five processes in turn, verifies.
    out = subprocess.run(
        [sys.executable, "-m", "daytwo", "audit", "verify", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
