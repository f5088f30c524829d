"""No code execution from the API: the two reproductions of issue 19, refused.

A tenant admin registers a ``python`` backend (``subprocess:getoutput``) or an MCP
backend whose command is ``sh -c …``, and an operator of the same tenant runs an
agent that calls it with ``id > FILE``. Both registrations answer 403 naming the
rule, are audited with the key, and no file appears; a row written before the rule
(straight into the catalog) is refused when called; the operator's allow-lists hold
at registration and at call time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.exceptions import CodeExecutionDenied, PermissionDenied
from daytwo.gateway import Gateway
from daytwo.gateway.contracts import parse_definitions
from daytwo.server import create_app
from daytwo.server.ownership import claim
from daytwo.server.services import audit_log, build_gateway
from daytwo.settings import Settings
from daytwo.store import Store

from .helpers import Keys


def _python_tool(name: str, target: str = "subprocess:getoutput") -> dict[str, Any]:
    return {
        "name": name,
        "capability": "shell.run",
        "version": "1.0.0",
        "input_schema": {"type": "object", "properties": {"cmd": {"type": "string"}}},
        "backend": {"type": "python", "callable": target},
    }


def _mcp_tool(name: str, line: str) -> dict[str, Any]:
    return {
        "name": name,
        "capability": "shell.run",
        "version": "1.0.0",
        "backend": {"type": "mcp", "tool": "x", "command": ["sh", "-c", line]},
    }


def _agent(tool: str, cmd: str) -> dict[str, Any]:
    return {
        "name": f"pwn-{tool}",
        "steps": [{"id": "t", "kind": "tool", "tool": tool, "arguments": {"cmd": cmd}}],
    }


@pytest.fixture
def gateway_client(settings: Settings, store: Store) -> Iterator[TestClient]:
    """The app with the real gateway and a runtime that calls tools through it."""
    from daytwo.runtime import Runtime, Services
    from daytwo.runtime.adapters import GatewayTelemetry, GatewayTools

    gateway = build_gateway(settings, store)
    services = Services(
        tools=GatewayTools(gateway),
        telemetry=GatewayTelemetry(gateway),
        audit=audit_log(settings, store),
    )
    schema = "dbos" if store.is_sqlite else f"dbos_{uuid.uuid4().hex[:10]}"
    rt = Runtime(store, services, data_dir=settings.data_dir, dbos_schema=schema)
    app = create_app(settings, store, runtime=rt, gateway=gateway)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c
    finally:
        gateway.close()
        if not store.is_sqlite:
            with store.engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def _wait(client: TestClient, run_id: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}", headers=Keys.header(key)).json()
        if run["status"] in {"succeeded", "failed", "cancelled"}:
            return run  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")


def test_api_cannot_register_code_backends(client: TestClient, keys: Keys, tmp_path: Path) -> None:
    for backend in ("python", "mcp"):
        _attack(client, keys, tmp_path, backend)
    kinds = [r.kind for r in client.app.state.audit.records()]  # type: ignore[attr-defined]
    assert kinds.count("tool.register.denied") == 2


def test_run_of_a_tenant_code_tool_fails_and_runs_nothing(
    gateway_client: TestClient, keys: Keys, store: Store, tmp_path: Path
) -> None:
    """The full reproduction: globex's agent calls globex's python tool (a row written
    before the rule) with ``id > FILE``; the run fails at that step, no file appears."""
    c = gateway_client
    target = tmp_path / "pwned"
    claim(store, "tool", "shell", "globex", "tool", exists=False)
    c.app.state.gateway.catalog.register_many(parse_definitions(_python_tool("shell")))  # type: ignore[attr-defined]
    r = c.post(
        "/api/v1/agents",
        json={"spec": _agent("shell", f"id > {target}")},
        headers=Keys.header(keys.other_admin),
    )
    assert r.status_code == 201, r.text
    r = c.post("/api/v1/runs", json={"agent": "pwn-shell"}, headers=Keys.header(keys.other_admin))
    assert r.status_code == 202, r.text
    run = _wait(c, r.json()["id"], keys.other_admin)
    assert run["status"] == "failed", run
    assert not target.exists()
    denied = [rec for rec in c.app.state.audit.records() if rec.kind == "gateway.denied"]  # type: ignore[attr-defined]
    assert denied
    assert "no code execution from the API" in denied[0].data["reason"]


def _attack(c: TestClient, keys: Keys, tmp_path: Path, backend: str) -> None:
    target = tmp_path / "pwned"
    tool = f"shell_{backend}"
    definition = _python_tool(tool) if backend == "python" else _mcp_tool(tool, f"id > {target}")
    r = c.post(
        "/api/v1/tools", json={"definition": definition}, headers=Keys.header(keys.other_admin)
    )
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "permission_denied"
    assert "no code execution from the API" in err["message"]
    assert "http backend" in err["hint"]
    # Not registered, not claimed: the tenant's catalog and the gateway do not have it.
    assert c.get(f"/api/v1/tools/{tool}", headers=Keys.header(keys.other_admin)).status_code == 404
    assert all(t.name != tool for t in c.app.state.gateway.tools())  # type: ignore[attr-defined]
    # An agent that would call it is refused: the tenant has no such tool.
    r = c.post(
        "/api/v1/agents",
        json={"spec": _agent(tool, f"id > {target}")},
        headers=Keys.header(keys.other_admin),
    )
    assert r.status_code == 400, r.text
    assert f"unknown tool {tool!r}" in r.json()["error"]["message"]
    assert not target.exists()
    # The refusal is audited with the key that tried.
    records = [
        rec
        for rec in c.app.state.audit.records()  # type: ignore[attr-defined]
        if rec.kind == "tool.register.denied" and rec.subject == tool
    ]
    assert len(records) == 1
    assert records[0].actor.startswith("globex/key:")
    assert records[0].data["tenant"] == "globex"
    assert records[0].data["role"] == "admin"


@pytest.mark.parametrize("backend", ["python", "mcp"])
def test_row_written_before_the_rule_does_not_run(
    backend: str, settings: Settings, store: Store, tmp_path: Path
) -> None:
    """A tenant's code-backend row already in the catalog (an old API write) is refused."""
    target = tmp_path / "pwned"
    tool = f"old_{backend}"
    definition = (
        _python_tool(tool, "os:system")
        if backend == "python"
        else _mcp_tool(tool, f"id > {target}")
    )
    claim(store, "tool", tool, "globex", "tool", exists=False)
    with build_gateway(settings, store) as gateway:
        gateway.catalog.register_many(parse_definitions(definition))
        with pytest.raises(CodeExecutionDenied, match="registered by a tenant"):
            gateway.call(tool, {"cmd": f"id > {target}"} if backend == "python" else {})
    assert not target.exists()
    kinds = [r.kind for r in audit_log(settings, store).records()]
    assert "gateway.denied" in kinds


def test_operator_allow_lists_hold_at_registration_and_call(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    strict = settings.model_copy(
        update={"allowed_python_backends": ("json:*",), "allowed_mcp_commands": ("my-mcp *",)}
    )
    with Gateway(store, strict) as gw:
        with pytest.raises(CodeExecutionDenied, match="allowed_python_backends"):
            gw.register(_python_tool("shell", "subprocess:getoutput"))
        with pytest.raises(CodeExecutionDenied, match="allowed_mcp_commands"):
            gw.register(_mcp_tool("sh_mcp", "id"))
        gw.register(
            {
                "name": "dumps",
                "capability": "json.dumps",
                "version": "1.0.0",
                "backend": {"type": "python", "callable": "json:dumps"},
                "output_schema": {"type": "object"},
            }
        )
    # Registered by an operator with no allow-list, then the operator sets one: refused.
    target = tmp_path / "pwned"
    with Gateway(store, settings) as gw:
        gw.register(_python_tool("shell", "os:system"))
    with Gateway(store, strict) as gw, pytest.raises(PermissionDenied, match="allow-list"):
        gw.call("shell", {"cmd": f"id > {target}"})
    assert not target.exists()


def test_agent_specs_cannot_import_python(client: TestClient, keys: Keys) -> None:
    """No agent step kind imports a module: a ``python`` step is not a valid spec."""
    spec = {"name": "imp", "steps": [{"id": "p", "kind": "python", "callable": "os:system"}]}
    r = client.post("/api/v1/agents", json={"spec": spec}, headers=Keys.header(keys.admin))
    assert r.status_code in {400, 422}, r.text


def _http_tool(name: str, secret: str) -> dict[str, Any]:
    return {
        "name": name,
        "capability": "inventory.read",
        "version": "1.0.0",
        "backend": {
            "type": "http",
            "url": "https://inventory.example.com/items",
            "auth": {"type": "bearer", "secret": secret},
        },
    }


def test_a_tenant_reads_only_its_own_vault(
    client: TestClient, keys: Keys, settings: Settings, store: Store
) -> None:
    """Credentials are named per tenant; a tool cannot point at another tenant's."""
    theirs = Keys.header(keys.other_admin)
    r = client.post(
        "/api/v1/tools", json={"definition": _http_tool("steal", "acme/token")}, headers=theirs
    )
    assert r.status_code == 403, r.text
    assert "not in your tenant's vault" in r.json()["error"]["message"]
    r = client.post(
        "/api/v1/tools", json={"definition": _http_tool("plain", "token")}, headers=theirs
    )
    assert r.status_code == 403, r.text
    r = client.post(
        "/api/v1/tools", json={"definition": _http_tool("mine", "globex/token")}, headers=theirs
    )
    assert r.status_code == 201, r.text
    # A row written before the rule (globex's tool reading acme's secret) is refused
    # when called, before any request leaves.
    claim(store, "tool", "old_steal", "globex", "tool", exists=False)
    with build_gateway(settings, store) as gateway:
        gateway.vault.put("acme/token", "ACME-SECRET-VALUE")  # type: ignore[union-attr]
        gateway.catalog.register_many(parse_definitions(_http_tool("old_steal", "acme/token")))
        with pytest.raises(PermissionDenied, match="not in your tenant's vault"):
            gateway.call("old_steal", {})
