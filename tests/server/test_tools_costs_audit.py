"""Tools (catalog, health, drift alerts), costs and audit routes: tenant isolation."""

from __future__ import annotations

import time
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from daytwo.server.ownership import grant
from daytwo.store import Store

from .helpers import Keys
from .test_runs import start, wait_done


def risk_definition() -> dict[str, Any]:
    text = (resources.files("daytwo.gateway.samples") / "risk_score.yaml").read_text()
    return dict(yaml.safe_load(text))


def http_definition(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "capability": "risk.score",
        "version": "1.0.0",
        "backend": {"type": "http", "url": "https://risk.example.com/score"},
    }


def test_tools_are_tenant_scoped(client: TestClient, keys: Keys, store: Store) -> None:
    c = client
    # risk_score runs a python callable: a server operator registers it on the host and
    # shares it with acme (a tenant cannot register code backends over the API).
    r = c.post(
        "/api/v1/tools", json={"definition": risk_definition()}, headers=Keys.header(keys.admin)
    )
    assert r.status_code == 403, r.text
    gateway = c.app.state.gateway  # type: ignore[attr-defined]
    gateway.register(risk_definition())
    grant(store, "tool", "risk_score", "acme")
    for account in ("a1", "a2", "a3"):
        gateway.call("risk_score", {"account": account})
    gateway.telemetry.flush()

    mine = Keys.header(keys.viewer)
    assert [t["name"] for t in c.get("/api/v1/tools", headers=mine).json()] == ["risk_score"]
    health = c.get("/api/v1/tools/health", headers=mine).json()
    assert health[0]["tool"] == "risk_score"
    assert health[0]["calls"] == 3
    assert health[0]["p99_ms"] >= health[0]["p50_ms"] > 0
    alerts = c.get("/api/v1/tools/drift-alerts", headers=mine).json()
    assert alerts
    assert {a["tool"] for a in alerts} == {"risk_score"}
    assert c.get("/api/v1/tools/risk_score", headers=mine).status_code == 200

    theirs = Keys.header(keys.other_admin)
    assert c.get("/api/v1/tools", headers=theirs).json() == []
    assert c.get("/api/v1/tools/health", headers=theirs).json() == []
    assert c.get("/api/v1/tools/drift-alerts", headers=theirs).json() == []
    assert c.get("/api/v1/tools/risk_score", headers=theirs).status_code == 404
    # Nor can another tenant publish a version of it, nor the tenant it is shared with.
    r = c.post("/api/v1/tools", json={"definition": http_definition("risk_score")}, headers=theirs)
    assert r.status_code == 409
    assert "acme" not in r.text
    r = c.post(
        "/api/v1/tools",
        json={"definition": http_definition("risk_score")},
        headers=Keys.header(keys.admin),
    )
    assert r.status_code == 409
    # A viewer cannot register tools; a broken definition is a 400 naming the problem.
    r = c.post("/api/v1/tools", json={"definition": http_definition("mine")}, headers=mine)
    assert r.status_code == 403
    r = c.post("/api/v1/tools", json={"definition": {"name": "x"}}, headers=Keys.header(keys.admin))
    assert r.status_code == 400
    r = c.post(
        "/api/v1/tools",
        json={"definition": http_definition("acme_risk")},
        headers=Keys.header(keys.admin),
    )
    assert r.status_code == 201, r.text
    names = [t["name"] for t in c.get("/api/v1/tools", headers=Keys.header(keys.admin)).json()]
    assert names == ["acme_risk", "risk_score"]
    assert c.get("/api/v1/tools", headers=theirs).json() == []


@pytest.mark.slow
def test_costs_and_audit_are_tenant_scoped(run_client: TestClient, keys: Keys) -> None:
    c = run_client
    run = start(c, keys.operator)
    wait_done(c, run["id"], keys.operator)
    deadline = time.monotonic() + 10
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        report = c.get("/api/v1/costs", headers=Keys.header(keys.viewer)).json()
        if report["by_agent"]:
            break
        time.sleep(0.1)
    assert [g["key"].split("@")[0] for g in report["by_agent"]] == ["support"]
    spans = sum(g["priced_spans"] + g["unpriced_spans"] for g in report["by_model"])
    assert spans >= 2  # the model call and the tool call
    assert all(g["key"].startswith("acme/") for g in report["by_principal"])
    # The model call is priced from the models layer's profiles, and named by the profile.
    model = next(g for g in report["by_model"] if g["key"] == "openai/gpt-4o-mini")
    assert model["priced_spans"] == 1
    assert Decimal(report["total_usd"]) > 0, report["by_model"]

    other = c.get("/api/v1/costs", headers=Keys.header(keys.other_viewer)).json()
    assert other["by_agent"] == []
    assert other["total_usd"] == "0"

    # Audit: admins only; the export holds the tenant's records only.
    assert c.get("/api/v1/audit/verify", headers=Keys.header(keys.viewer)).status_code == 403
    status = c.get("/api/v1/audit/verify", headers=Keys.header(keys.admin)).json()
    assert status["ok"] is True
    exported = c.get("/api/v1/audit/export", headers=Keys.header(keys.admin)).json()
    assert {"run.start", "run.end"} <= {r["kind"] for r in exported}
    # globex sees only its own records (the first use of its keys today), none of acme's.
    theirs = c.get("/api/v1/audit/export", headers=Keys.header(keys.other_admin)).json()
    assert {r["kind"] for r in theirs} <= {"key.use"}
    assert all(r["actor"].startswith("globex/") for r in theirs)


def test_mcp_endpoint_is_mounted(client: TestClient, keys: Keys) -> None:
    c = client
    # The MCP transport guards against DNS rebinding: only loopback Host headers pass.
    c.base_url = "http://127.0.0.1:8765"  # type: ignore[assignment]
    c.app.state.gateway.register(risk_definition())  # type: ignore[attr-defined]
    agent_key = c.app.state.gateway.create_agent("mcp-agent", ["risk_score"])  # type: ignore[attr-defined]
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    r = c.post("/mcp/", json=rpc, headers=accept)
    assert r.status_code == 401
    r = c.post("/mcp/", json=rpc, headers={**accept, "Authorization": f"Bearer {agent_key}"})
    assert r.status_code == 200, r.text
    assert [t["name"] for t in r.json()["result"]["tools"]] == ["risk_score"]
