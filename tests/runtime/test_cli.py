"""`daytwo agents` and `daytwo runs` end to end (in-process CLI, real store and DBOS)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from daytwo.cli.main import run

HERE = Path(__file__).parent

AGENT = """\
name: cli-demo
steps:
  - id: first
    kind: tool
    tool: effect
    arguments: {n: 1}
  - id: second
    kind: tool
    tool: effect
    arguments: {n: "{{ input.n }}"}
output: second
"""


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from rt_worker_services import EFFECTS_ENV, init_effects

    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(EFFECTS_ENV, str(tmp_path / "effects.db"))
    init_effects(str(tmp_path / "effects.db"))
    assert run(["db", "upgrade"]) == 0
    return tmp_path


sys.path.insert(0, str(HERE))


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    capsys.readouterr()
    code = run(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_agents_versions_promote_rollback_and_diff(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cli_env / "agent.yaml"
    path.write_text(AGENT)
    first = _json(capsys, ["agents", "register", str(path), "--json"])
    assert first["version"] == 1
    assert first["created"]
    again = _json(capsys, ["agents", "register", str(path), "--json"])
    assert again["version"] == 1
    assert not again["created"]
    path.write_text(AGENT.replace("n: 1}", "n: 2}"))
    assert _json(capsys, ["agents", "register", str(path), "--json"])["version"] == 2
    diff = _json(capsys, ["agents", "diff", "cli-demo", "1", "2", "--json"])
    assert "-    n: 1" in diff["diff"]
    assert "+    n: 2" in diff["diff"]
    _json(capsys, ["agents", "promote", "cli-demo", "1", "--to", "prod", "--json"])
    _json(capsys, ["agents", "promote", "cli-demo", "2", "--to", "prod", "--json"])
    listed = _json(capsys, ["agents", "list", "--json"])
    assert [(a["version"], a["aliases"]) for a in listed] == [(2, ["prod"]), (1, [])]
    back = _json(capsys, ["agents", "rollback", "cli-demo", "--json"])
    assert (back["from"], back["to"]) == (2, 1)
    shown = _json(capsys, ["agents", "show", "cli-demo", "--version", "prod", "--json"])
    assert shown["version"] == 1


def test_runs_start_show_list_fork_explain(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cli_env / "agent.yaml"
    path.write_text(AGENT)
    _json(capsys, ["agents", "register", str(path), "--json"])
    services = ["--services", "rt_worker_services:services"]
    started = _json(
        capsys, ["runs", "start", "cli-demo", "--input", '{"n": 5}', *services, "--json"]
    )
    assert started["status"] == "succeeded"
    assert started["outputs"]["answer"]["n"] == 5
    assert started["version"] == 1
    rid = started["id"]
    shown = _json(capsys, ["runs", "show", rid, "--json"])
    assert [c["name"] for c in shown["checkpoints"]] == ["step:first", "step:second"]
    listed = _json(capsys, ["runs", "list", "--json"])
    assert [r["id"] for r in listed] == [rid]
    forked = _json(capsys, ["runs", "fork", rid, "--from-step", "2", *services, "--json"])
    assert forked["forked_from"] == rid
    assert forked["status"] == "succeeded"
    explained = _json(capsys, ["runs", "explain", rid, "--json"])
    assert explained


def test_bad_input_is_one_red_line(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = cli_env / "bad.yaml"
    bad.write_text(
        "name: x\nsteps:\n  - id: a\n    kind: tool\n    tool: t\n    retry: {attempts: zero}\n"
    )
    capsys.readouterr()
    assert run(["agents", "register", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:6: steps.0.retry.attempts" in err
    assert "Traceback" not in err
    cyc = cli_env / "cycle.yaml"
    cyc.write_text(
        "name: c\nsteps:\n  - {id: a, kind: tool, tool: t, after: [b]}\n"
        "  - {id: b, kind: tool, tool: t, after: [a]}\n"
    )
    assert run(["agents", "register", str(cyc)]) == 2
    assert "cycle: a -> b -> a" in capsys.readouterr().err
    assert run(["runs", "start", "nobody", "--input", "[1]"]) == 2
    assert "--input must be a JSON object" in capsys.readouterr().err
    assert run(["runs", "show", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    assert run(["agents", "rollback", "ghost"]) == 2
    assert "never promoted" in capsys.readouterr().err
