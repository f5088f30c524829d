"""Runs through the API: start, watch, show, explain, audit; roles and tenant isolation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from .helpers import Keys

pytestmark = pytest.mark.slow


def wait_done(client: TestClient, run_id: str, key: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}", headers=Keys.header(key)).json()
        if run["status"] in {"succeeded", "failed", "cancelled"}:
            return dict(run)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def start(client: TestClient, key: str, **inputs: Any) -> dict[str, Any]:
    body = {"agent": "support", "inputs": inputs or {"question": "Where is it?", "order_id": "A-7"}}
    r = client.post("/api/v1/runs", json=body, headers=Keys.header(key))
    assert r.status_code == 202, r.text
    return dict(r.json())


def test_run_lifecycle_and_isolation(run_client: TestClient, keys: Keys) -> None:
    c = run_client
    run = start(c, keys.operator)
    done = wait_done(c, run["id"], keys.viewer)
    assert done["status"] == "succeeded", done
    assert done["outputs"]["answer"]["answer"] == "Your order A-1001 ships tomorrow."
    assert "principal" not in done
    assert [cp["name"] for cp in done["checkpoints"]]

    # Server-sent events of a finished run: its steps, then done.
    with c.stream("GET", f"/api/v1/runs/{run['id']}/events", headers=Keys.header(keys.viewer)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    assert "event: step" in text
    assert text.rstrip().splitlines()[-2] == "event: done"

    expl = c.get(f"/api/v1/runs/{run['id']}/explain", headers=Keys.header(keys.viewer)).json()
    assert "steps" in expl, expl
    names = [s["name"] for s in expl["steps"]]
    assert any(n.startswith("run support") for n in names), names
    assert expl["total_ms"] > 0

    audit = c.post(f"/api/v1/runs/{run['id']}/audit/verify", headers=Keys.header(keys.viewer))
    assert audit.status_code == 200
    assert audit.json()["ok"] is True
    kinds = [r["kind"] for r in audit.json()["records"]]
    assert "run.start" in kinds
    assert "run.end" in kinds

    listed = c.get("/api/v1/runs", headers=Keys.header(keys.viewer)).json()
    assert [r["id"] for r in listed] == [run["id"]]
    assert c.get("/api/v1/runs?status=failed", headers=Keys.header(keys.viewer)).json() == []

    # Another tenant sees nothing of it.
    other = Keys.header(keys.other_admin)
    assert c.get("/api/v1/runs", headers=other).json() == []
    for method, path in [
        ("GET", ""),
        ("GET", "/explain"),
        ("GET", "/events"),
        ("POST", "/audit/verify"),
        ("POST", "/cancel"),
        ("POST", "/resume"),
    ]:
        r = c.request(method, f"/api/v1/runs/{run['id']}{path}", headers=other)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_run_roles_and_bad_input(run_client: TestClient, keys: Keys) -> None:
    c = run_client
    r = c.post(
        "/api/v1/runs", json={"agent": "support", "inputs": {}}, headers=Keys.header(keys.viewer)
    )
    assert r.status_code == 403
    r = c.post("/api/v1/runs", json={"agent": "nobody"}, headers=Keys.header(keys.operator))
    assert r.status_code == 404
    assert "no agent 'nobody'" in r.json()["error"]["message"]
    r = c.post(
        "/api/v1/runs", json={"agent": "support", "inputs": [1]}, headers=Keys.header(keys.operator)
    )
    assert r.status_code == 422
    run = start(c, keys.operator)
    wait_done(c, run["id"], keys.operator)
    r = c.post(f"/api/v1/runs/{run['id']}/cancel", headers=Keys.header(keys.operator))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_agents_routes(run_client: TestClient, keys: Keys) -> None:
    c = run_client
    listed = c.get("/api/v1/agents", headers=Keys.header(keys.viewer)).json()
    assert [(a["name"], a["version"]) for a in listed] == [("support", 1)]
    spec = c.get("/api/v1/agents/support/versions/1", headers=Keys.header(keys.viewer)).json()
    spec["spec"]["description"] = "v2"
    body = {"spec": spec["spec"]}
    assert (
        c.post("/api/v1/agents", json=body, headers=Keys.header(keys.operator)).status_code == 403
    )
    r = c.post("/api/v1/agents", json=body, headers=Keys.header(keys.admin))
    assert r.status_code == 201
    assert r.json()["version"] == 2
    r = c.post(
        "/api/v1/agents/support/promote", json={"version": 1}, headers=Keys.header(keys.admin)
    )
    assert r.json()["to_version"] == 1
    c.post("/api/v1/agents/support/promote", json={"version": 2}, headers=Keys.header(keys.admin))
    r = c.post("/api/v1/agents/support/rollback", json={}, headers=Keys.header(keys.admin))
    assert (r.json()["from_version"], r.json()["to_version"]) == (2, 1)
    c.post("/api/v1/agents/support/promote", json={"version": 2}, headers=Keys.header(keys.admin))
    r = c.post("/api/v1/agents/support/rollback", headers=Keys.header(keys.admin))  # no body
    assert r.status_code == 200, r.text
    assert r.json()["to_version"] == 1
    r = c.post("/api/v1/agents", json={"spec_yaml": "name: [oops"}, headers=Keys.header(keys.admin))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_input"


def test_start_with_an_idempotency_key_returns_the_same_run(
    run_client: TestClient, keys: Keys
) -> None:
    c = run_client
    body = {"agent": "support", "inputs": {"question": "Where is it?", "order_id": "A-7"}}
    headers = {**Keys.header(keys.operator), "Idempotency-Key": "order-A-7-try-1"}
    first = c.post("/api/v1/runs", json=body, headers=headers)
    assert first.status_code == 202, first.text
    again = c.post("/api/v1/runs", json=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == first.json()["id"]
    other = c.post(
        "/api/v1/runs",
        json=body,
        headers={**Keys.header(keys.operator), "Idempotency-Key": "order-A-7-try-2"},
    )
    assert other.status_code == 202, other.text
    assert other.json()["id"] != first.json()["id"]
    wait_done(c, first.json()["id"], keys.viewer)
    wait_done(c, other.json()["id"], keys.viewer)
    listed = c.get("/api/v1/runs", headers=Keys.header(keys.viewer)).json()
    assert sorted(r["id"] for r in listed) == sorted([first.json()["id"], other.json()["id"]])
    # The finished run is still what the key stands for.
    late = c.post("/api/v1/runs", json=body, headers=headers)
    assert late.json()["id"] == first.json()["id"]
    assert late.json()["status"] == "succeeded"

    for bad in ("has space", "x" * 256):
        r = c.post(
            "/api/v1/runs",
            json=body,
            headers={**Keys.header(keys.operator), "Idempotency-Key": bad},
        )
        assert r.status_code == 422, r.text
        assert "idempotency-key" in r.text.lower(), r.text
    assert len(c.get("/api/v1/runs", headers=Keys.header(keys.viewer)).json()) == 2
