"""`daytwo tools`: every command, --json output, bad input as one red line and exit 2."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from daytwo.cli.main import run
from daytwo.gateway import Gateway
from daytwo.store import Store

from .conftest import py_tool
from .test_catalog import SPEC


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("DAYTWO_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))

    def invoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = run(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    assert run(["db", "upgrade"]) == 0
    return invoke


def test_register_list_show_call_health(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "tools", "register-samples", "--json")
    assert code == 0
    assert {r["name"] for r in json.loads(out)} == {"orders_status_cached", "orders_status_live"}
    code, out, _ = cli(capsys, "tools", "list", "--json", "--capability", "orders.status")
    assert [r["version"] for r in json.loads(out)] == ["1.0.0", "1.0.0"]
    code, out, _ = cli(capsys, "tools", "show", "orders_status_cached@1", "--json")
    assert json.loads(out)["definition"]["backend"]["type"] == "python"
    code, out, err = cli(
        capsys,
        "tools",
        "call",
        "orders_status_cached",
        "--args",
        '{"order_id": "A-1004"}',
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["output"]["status"] == "cancelled"
    code, out, _ = cli(capsys, "tools", "health", "--json")
    stats = json.loads(out)["tools"]["orders_status_cached"]
    assert stats["calls"] == 1
    assert stats["error_rate"] == 0.0
    assert set(stats) == {"p50_ms", "p95_ms", "p99_ms", "error_rate", "cost_usd", "calls"}


def test_register_file_conflict_and_bad_input(
    cli: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = tmp_path / "t.yaml"
    good.write_text(yaml.safe_dump({"tools": [py_tool("a", "m:f"), py_tool("b", "m:f")]}))
    assert cli(capsys, "tools", "register", str(good))[0] == 0
    changed = tmp_path / "t2.yaml"
    changed.write_text(
        yaml.safe_dump({"tools": [py_tool("c", "m:f"), py_tool("b", "m:f", description="x")]})
    )
    code, _, err = cli(capsys, "tools", "register", str(changed))
    assert code == 2
    assert "already registered with a different definition" in err
    assert "Traceback" not in err
    code, out, _ = cli(capsys, "tools", "list", "--json")
    assert [r["name"] for r in json.loads(out)] == ["a", "b"]  # c was not half-registered
    broken = tmp_path / "broken.yaml"
    broken.write_text("tools: [")
    code, _, err = cli(capsys, "tools", "register", str(broken))
    assert code == 2
    assert "not valid YAML" in err
    code, _, err = cli(capsys, "tools", "call", "nope", "--args", "{}")
    assert code == 2
    assert "unknown tool 'nope'" in err
    code, _, err = cli(capsys, "tools", "call", "a", "--args", "{not json")
    assert code == 2
    assert "--args is not JSON" in err


def test_diff_and_import_openapi(
    cli: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    old = tmp_path / "old.yaml"
    new = tmp_path / "new.yaml"
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    old.write_text(yaml.safe_dump(py_tool("t", "m:f", input_schema=schema)))
    schema2 = {"type": "object", "required": ["b"], "properties": {**schema["properties"], "b": {}}}
    new.write_text(yaml.safe_dump(py_tool("t", "m:f", input_schema=schema2, version="1.1.0")))
    code, out, _ = cli(capsys, "tools", "diff", str(old), str(new), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["kind"] == "breaking"
    assert report["version_ok"] is False
    code, out, _ = cli(capsys, "tools", "diff", str(old), str(old), "--json")
    assert code == 0
    assert json.loads(out)["kind"] == "identical"
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    code, out, err = cli(
        capsys, "tools", "import-openapi", str(spec), "--base-url", "https://inv.example", "--json"
    )
    assert code == 0, err
    imported = json.loads(out)
    assert sorted(r["name"] for r in imported["tools"]) == ["createItem", "getItem"]
    assert imported["skipped"] == []
    code, out, _ = cli(capsys, "tools", "diff", "getItem@2", "getItem@2.1.0", "--json")
    assert json.loads(out)["kind"] == "identical"
    code, _, err = cli(capsys, "tools", "import-openapi", str(old), "--base-url", "https://x")
    assert code == 2
    assert "not an OpenAPI 3 document" in err


def test_drift_agents_and_secrets(
    cli: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'cli.db'}")
    gw = Gateway(store)
    rng = random.Random(5)
    gw.register_python("risk", lambda: {"risk_score": rng.choice(["LOW", "HIGH"])})
    gw.register(py_tool("risk", "risk", expectations={"risk_score": {"type": "number"}}))
    gw.call("risk", {})
    gw.close()
    store.dispose()
    code, out, _ = cli(capsys, "tools", "drift", "--json")
    alerts = json.loads(out)["alerts"]
    assert {(a["tool"], a["field"], a["kind"]) for a in alerts} >= {("risk", "risk_score", "type")}
    code, out, _ = cli(capsys, "tools", "agent-create", "bot", "--tool", "risk", "--json")
    key = json.loads(out)["api_key"]
    code, out, _ = cli(
        capsys, "tools", "agent-create", "globex-bot", "--tool", "*", "--tenant", "globex"
    )
    assert code == 0
    assert "agent globex-bot of tenant globex created" in out
    code, out, _ = cli(capsys, "tools", "agent-list", "--json")
    assert json.loads(out) == [
        {"name": "bot", "tenant": "default", "tools": ["risk"], "rate_limit": None},
        {"name": "globex-bot", "tenant": "globex", "tools": ["*"], "rate_limit": None},
    ]
    code, out, _ = cli(capsys, "tools", "agent-list", "--tenant", "globex")
    assert out.strip() == "globex-bot [globex]: * (no limit)"
    # Names are unique across tenants; a bad tenant is one clear line, nothing written.
    code, _, err = cli(capsys, "tools", "agent-create", "bot", "--tool", "*", "--tenant", "acme")
    assert code != 0
    assert "exists already" in err
    code, _, err = cli(capsys, "tools", "agent-create", "x", "--tool", "*", "--tenant", "a/b")
    assert code == 2
    assert "not a valid tenant name" in err
    assert "Traceback" not in err
    code, out, _ = cli(capsys, "tools", "agent-list", "--json")
    assert [a["name"] for a in json.loads(out)] == ["bot", "globex-bot"]
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cr3t-value\n"))
    assert cli(capsys, "tools", "secret-set", "token", "--stdin")[0] == 0
    code, out, _ = cli(capsys, "tools", "secret-list", "--json")
    assert json.loads(out) == ["token"]
    assert "s3cr3t-value" not in out
    assert key.startswith("dt_")
    code, _, err = cli(capsys, "tools", "mcp-serve", "--transport", "ftp")
    assert code == 2
    assert "unknown transport" in err


def test_shipped_yaml_sample_registers_and_adapts(
    cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from daytwo.gateway.samples import sample_yaml_path

    code, out, err = cli(capsys, "tools", "register", str(sample_yaml_path()), "--json")
    assert code == 0, err
    code, out, err = cli(
        capsys, "tools", "call", "risk_score@1", "--args", '{"account": "acme"}', "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["adapted"] is True
    assert result["output"]["risk_score"] in {0.2, 0.5, 0.85}
    assert result["alerts"][0]["kind"] == "type"
    code, out, _ = cli(capsys, "tools", "drift", "--tool", "risk_score", "--json")
    assert json.loads(out)["alerts"][0]["action"] == "adapt"
