"""Several server processes over one PostgreSQL database act as one service.

A run started through one server, whose process is killed in the middle of a step,
is seen through another server and resumed there: it completes from its last
checkpoint (the finished step does not run again; the interrupted one does).
"""

from __future__ import annotations

import os
import signal
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
        from daytwo.gateway import Gateway
        from daytwo.server.ownership import grant
        from daytwo.store import Store

        store = Store(pg_url)
        try:
            # Python backends: the server operator registers them on the host and shares
            # them with the tenant (never over the API).
            gateway = Gateway(store)
            for definition in (
                _tool("mark_account", "mark", "seen"),
                _tool("gated_approval", "gated", "approved"),
            ):
                gateway.register(definition)
                grant(store, "tool", definition["name"], "acme")
            gateway.create_agent("gatekeeper", ["mark_account", "gated_approval"])
        finally:
            store.dispose()
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

        # Server B sees the interrupted run, its first step checkpointed; nobody runs it.
        run = httpx.get(f"{url_b}/api/v1/runs/{run_id}", headers=auth).json()
        assert run["status"] not in FINAL, run
        assert [cp["name"] for cp in run["checkpoints"]][:1] == ["step:first"], run
        time.sleep(1.0)
        still = httpx.get(f"{url_b}/api/v1/runs/{run_id}", headers=auth).json()
        assert still["status"] == run["status"]
        assert _calls(gate, "gated") == [first.pid]

        # Resumed through server B: it completes there.
        (gate / "open").touch()
        r = httpx.post(f"{url_b}/api/v1/runs/{run_id}/resume", headers=auth)
        assert r.status_code == 200, r.text
        done = _wait(
            lambda: (
                run
                if (run := httpx.get(f"{url_b}/api/v1/runs/{run_id}", headers=auth).json())[
                    "status"
                ]
                in FINAL
                else None
            ),
            "the resumed run to finish",
        )
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
    finally:
        stop_server(first)
        if second is not None:
            stop_server(second)
