"""`daytwo eval` end to end: sets, run, gate exit codes, watch, report, review, load, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daytwo.cli._context import state
from daytwo.cli.main import run
from daytwo.evals.samples import sample_golden_path

AGENTS = """
from daytwo.evals.runner import AgentResult

def good(case):
    return AgentResult(output=case.expected_output or "ok", input_tokens=5)

def bad(case):
    return "I do not know"
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    state.reset()
    code = run(list(args))
    out = capsys.readouterr().out
    return code, out


@pytest.fixture
def agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_agents.py").write_text(AGENTS)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_eval_cli_flow(capsys: pytest.CaptureFixture[str], tmp_path: Path, agents: None) -> None:
    assert cli(capsys, "db", "upgrade")[0] == 0
    code, out = cli(capsys, "eval", "sets", "import", "sup", str(sample_golden_path()), "--json")
    assert code == 0
    assert json.loads(out)["version"] == 1
    code, out = cli(
        capsys,
        "eval",
        "sets",
        "add",
        "sup",
        "--input",
        "Do you ship to Mars?",
        "--tag",
        "out-of-scope",
        "--json",
    )
    assert json.loads(out)["version"] == 2
    code, out = cli(capsys, "eval", "sets", "diff", "sup", "1", "--json")
    assert len(json.loads(out)["added"]) == 1
    code, out = cli(capsys, "eval", "sets", "versions", "sup", "--json")
    assert [v["version"] for v in json.loads(out)] == [1, 2]
    assert cli(capsys, "eval", "sets", "export", "sup@1", "--out", "x.jsonl")[0] == 0
    assert Path("x.jsonl").read_text().count("\n") == sample_golden_path().read_text().count("\n")

    runs = {}
    for name in ("good", "good", "bad"):
        code, out = cli(
            capsys,
            "eval",
            "run",
            "--agent",
            f"python:my_agents:{name}@v1",
            "--set",
            "sup@1",
            "--json",
        )
        assert code == 0, out
        runs.setdefault(name, []).append(json.loads(out)["id"])
    base, same, worse = runs["good"][0], runs["good"][1], runs["bad"][0]
    code, out = cli(
        capsys, "eval", "gate", "--candidate", worse, "--baseline", base,
        "--metric", "fuzzy_match", "--max-drop", "0.05", "--json",
        "--junit", "ci/gate.xml", "--markdown", "ci/comment.md",
    )  # fmt: skip
    assert code == 1
    assert json.loads(out)["verdict"] == "fail"
    assert 'failures="1"' in Path("ci/gate.xml").read_text()
    assert "❌" in Path("ci/comment.md").read_text()
    code, out = cli(
        capsys, "eval", "gate", "--candidate", same, "--baseline", base, "--metric", "fuzzy_match"
    )
    assert code == 0
    assert "PASS" in out
    code, out = cli(capsys, "eval", "show", worse, "--cases", "--json")
    assert len(json.loads(out)["results"]) == 16
    code, out = cli(
        capsys, "eval", "report", worse, "--html", "r/report.html", "--baseline", base,
        "--gate-metric", "fuzzy_match", "--max-drop", "0.05",
    )  # fmt: skip
    assert code == 0
    report = Path("r/report.html").read_text()
    assert "<svg" in report
    assert "FAIL: significant drop" in report
    code, out = cli(capsys, "eval", "report", worse, "--html", "r/x.html", "--trace-url", "x")
    assert code == 2
    code, out = cli(
        capsys, "eval", "watch", "--agent", "python:my_agents:bad", "--set", "sup",
        "--metric", "fuzzy_match", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["alert"] is False  # only one run: nothing to compare
    code, out = cli(capsys, "eval", "runs", "--json")
    assert len(json.loads(out)) == 3
    code, out = cli(
        capsys, "eval", "load", "--agent", "python:my_agents:good", "--set", "sup",
        "--concurrency", "4", "--runs", "12", "--json",
    )  # fmt: skip
    assert code == 0
    load = json.loads(out)
    assert load["runs"] == 12
    assert load["error_rate"] == 0.0
    assert set(load["latency_ms"]) >= {"p50", "p95", "p99"}
    code, out = cli(capsys, "eval", "review", "--set", "sup", "--json")
    assert json.loads(out) == []


def daytwo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daytwo", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


def test_bad_input_is_one_red_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert daytwo("db", "upgrade").returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "fine"}\n{"input": "broken"\n')
    out = daytwo("eval", "sets", "import", "s", str(bad))  # the real console entry point
    assert out.returncode == 2
    assert "line 2 is not valid JSON" in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    for args, message in [
        (("eval", "sets", "versions", "s"), "golden set 's' does not exist"),  # nothing written
        (("eval", "run", "--agent", "model:local", "--set", "nope@2"), "does not exist"),
        (
            ("eval", "gate", "--candidate", "x1", "--baseline", "x2", "--metric", "m"),
            "does not exist",
        ),
        (("eval", "synthesize", "--set", "s", "--kind", "typos"), "exactly one of"),
        (("eval", "sets", "diff", "s", "1"), "does not exist"),
    ]:
        state.reset()
        code = run(list(args))
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert message in err
        assert "Traceback" not in err


def test_synthesize_typos_from_cases_then_review(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "db", "upgrade")[0] == 0
    assert cli(capsys, "eval", "sets", "import", "sup", str(sample_golden_path()))[0] == 0
    code, out = cli(
        capsys,
        "eval", "synthesize", "--set", "sup", "--kind", "typos", "--from-cases", "--n", "3",
        "--json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["requested"] == 3
    assert report["usable"] == 3
    assert report["model_calls"] == 0  # a deterministic perturbation: no model loads
    code, out = cli(capsys, "eval", "review", "--set", "sup", "--accept", "all", "--json")
    assert code == 0, out
    code, out = cli(capsys, "eval", "sets", "versions", "sup", "--json")
    versions = json.loads(out)
    assert versions[-1]["cases"] == versions[0]["cases"] + 3
    state.reset()
    args = ["eval", "synthesize", "--set", "sup", "--kind", "typos", "--from-docs", "nope"]
    assert run(args) == 2
    assert "neither a knowledge collection" in capsys.readouterr().err


def test_promote_near_duplicate_threshold_from_setting_and_flag(
    capsys: pytest.CaptureFixture[str], agents: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The near-duplicate threshold is the setting's unless --threshold overrides it."""
    from daytwo.evals.dedup import default_embedder, near_duplicates

    assert cli(capsys, "db", "upgrade")[0] == 0
    assert cli(capsys, "eval", "sets", "import", "sup", str(sample_golden_path()))[0] == 0
    code, out = cli(capsys, "eval", "run", "--agent", "python:my_agents:bad@v1",
                    "--set", "sup@1", "--json")  # fmt: skip
    assert code == 0, out
    code, out = cli(capsys, "eval", "show", json.loads(out)["id"], "--cases", "--json")
    result = json.loads(out)["results"][0]
    code, out = cli(capsys, "eval", "sets", "export", "sup@1")
    source = next(json.loads(x) for x in out.splitlines() if json.loads(x)["key"] == result["case"])
    paraphrase = "Could you tell me: " + source["input"].rstrip("?") + ", please?"
    assert cli(capsys, "eval", "sets", "create", "prod")[0] == 0
    assert cli(capsys, "eval", "sets", "add", "prod", "--input", paraphrase)[0] == 0
    sim = near_duplicates([source["input"]], [paraphrase], embedder=default_embedder())[0][1]
    assert 0.5 < sim < 0.99, sim

    monkeypatch.setenv("DAYTWO_EVAL_NEAR_DUPLICATE_THRESHOLD", f"{sim - 0.01:.4f}")
    state.reset()
    assert run(["eval", "promote", result["id"], "--set", "prod", "--tag", "t"]) == 2
    assert "near-duplicate" in capsys.readouterr().err
    code, out = cli(capsys, "eval", "promote", result["id"], "--set", "prod", "--tag", "t",
                    "--threshold", f"{min(1.0, sim + 0.01):.4f}", "--json")  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["version"]["version"] == 2
