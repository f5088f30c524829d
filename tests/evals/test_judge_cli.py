"""`daytwo eval judge`: pointwise and pairwise (both orders) over stored runs, verdicts kept,
a changed judge prompt under the same version refused."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from daytwo.cli._context import state
from daytwo.cli.main import run
from daytwo.evals.samples import sample_golden_path
from daytwo.store.tables.evals import EvalJudge, EvalJudgement
from daytwo.testing import ScriptedModelServer

AGENTS = """
from daytwo.evals.runner import AgentResult

def good(case):
    return AgentResult(output=case.expected_output or "ok")

def bad(case):
    return "I do not know"
"""
BAD = "I do not know"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    state.reset()
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _user(request: dict[str, Any]) -> str:
    return str(request["messages"][-1]["content"])


def fair_judge(request: dict[str, Any]) -> str:
    text = _user(request)
    if "Answer A:" in text:
        a = re.search(r"Answer A: (.*?)\n\nAnswer B:", text, re.S)
        assert a is not None
        return json.dumps({"winner": "B" if a.group(1).strip() == BAD else "A"})
    answer = text.rsplit("Answer: ", 1)[1]
    return json.dumps({"score": 1 if answer.startswith(BAD) else 5})


def first_position_judge(request: dict[str, Any]) -> str:
    return '{"winner": "A"}'  # whatever is shown first: only the swap exposes it


@pytest.fixture
def two_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    (tmp_path / "judge_agents.py").write_text(AGENTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli(capsys, "db", "upgrade")[0] == 0
    assert cli(capsys, "eval", "sets", "import", "sup", str(sample_golden_path()))[0] == 0
    ids = []
    for name in ("good", "bad"):
        state.reset()
        code = run(["eval", "run", "--agent", f"python:judge_agents:{name}@v1",
                    "--set", "sup@1", "--json"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0, out
        ids.append(json.loads(out)["id"])
    return ids[0], ids[1]


def _counts() -> tuple[int, int]:
    with state.store().session() as s:
        judges = s.scalar(select(func.count()).select_from(EvalJudge)) or 0
        verdicts = s.scalar(select(func.count()).select_from(EvalJudgement)) or 0
    return judges, verdicts


def test_pointwise_scores_each_case_and_stores_the_judge(
    capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str]
) -> None:
    good, bad = two_runs
    with ScriptedModelServer(responder=fair_judge) as server:
        model = f"{server.base_url}#judge"
        code, out = cli(capsys, "eval", "judge", "pointwise", good, "--model", model, "--json")
        assert code == 0, out
        res = json.loads(out)
        assert res["judge"] == "answer_relevance@1"
        assert res["cases"] == 16
        assert res["mean_score"] == 1.0
        code, out = cli(capsys, "eval", "judge", "pointwise", bad, "--model", model, "--json")
        assert json.loads(out)["mean_score"] == 0.0
        code, out = cli(capsys, "eval", "judge", "pointwise", bad, "--model", model)
        assert code == 0
        assert "mean 0.000" in out
    assert _counts() == (1, 48)
    with state.store().session() as s:
        judge = s.scalars(select(EvalJudge)).one()
        assert judge.model.endswith("#judge")
        assert "relevance" in judge.prompt


def test_pairwise_asks_both_orders_and_counts_only_agreement(
    capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str]
) -> None:
    good, bad = two_runs
    with ScriptedModelServer(responder=fair_judge) as server:
        code, out = cli(
            capsys, "eval", "judge", "pairwise", "--candidate", bad, "--baseline", good,
            "--model", f"{server.base_url}#judge", "--json",
        )  # fmt: skip
        assert code == 0, out
        assert len(server.requests) == 32  # 16 cases, each in both orders
    res = json.loads(out)
    assert (res["baseline_wins"], res["candidate_wins"], res["ties"]) == (16, 0, 0)
    assert res["consistency_rate"] == 1.0

    with ScriptedModelServer(responder=first_position_judge) as server:
        code, out = cli(
            capsys, "eval", "judge", "pairwise", "--candidate", bad, "--baseline", good,
            "--model", f"{server.base_url}#judge", "--json",
        )  # fmt: skip
    res = json.loads(out)
    # A judge that always picks the first position wins nothing for either side.
    assert (res["baseline_wins"], res["candidate_wins"], res["ties"]) == (0, 0, 16)
    assert res["consistency_rate"] == 0.0
    assert res["picked_first_position_rate"] == 1.0
    first = res["results"][0]
    assert (first["candidate_first"], first["baseline_first"]) == ("candidate", "baseline")
    with state.store().session() as s:
        rows = s.scalars(select(EvalJudgement).where(EvalJudgement.kind == "pairwise")).all()
        assert len(rows) == 32
        assert {r.detail["baseline_run"] for r in rows} == {good}


def test_changed_prompt_under_the_same_version_is_refused(
    capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str], tmp_path: Path
) -> None:
    good, _ = two_runs
    judge = tmp_path / "tone.yaml"
    body = (
        "name: tone\nversion: '1'\nkind: pointwise\n"
        "system: 'Score {criterion}. Reply with only JSON like {{\"score\": 3}}.'\n"
        "template: 'Question: {question}\\n\\nAnswer: {answer}'\n"
    )
    judge.write_text(body.replace("{criterion}", "politeness"))
    with ScriptedModelServer(default='{"score": 4}') as server:
        model = f"{server.base_url}#judge"
        code, out = cli(capsys, "eval", "judge", "pointwise", good, "--judge", str(judge),
                        "--model", model, "--json")  # fmt: skip
        assert code == 0, out
        assert json.loads(out)["mean_score"] == 0.75
        judge.write_text(body.replace("{criterion}", "friendliness"))
        before = len(server.requests)
        code, out = cli(capsys, "eval", "judge", "pointwise", good, "--judge", str(judge),
                        "--model", model)  # fmt: skip
        assert code == 2
        assert "tone@1 is stored with another prompt" in out
        assert "new version" in out
        assert len(server.requests) == before  # refused before any model call
    assert _counts() == (1, 16)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pointwise", "nope"), "does not exist"),
        (("pointwise", "RUN", "--judge", "pairwise"), "is pairwise"),
        (("pointwise", "RUN", "--judge", "no-such-judge"), "no judge 'no-such-judge'"),
        (("pairwise", "--candidate", "RUN", "--baseline", "nope"), "does not exist"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str],
    two_runs: tuple[str, str],
    args: tuple[str, ...],
    message: str,
) -> None:
    good, _ = two_runs
    argv = [good if a == "RUN" else a for a in args]
    code, out = cli(capsys, "eval", "judge", *argv, "--model", "http://127.0.0.1:9/v1#x")
    assert code == 2
    assert message in out
    assert "Traceback" not in out
    assert _counts() == (0, 0)


def test_report_shows_judge_verdicts_and_the_gate_uses_them(
    capsys: pytest.CaptureFixture[str], two_runs: tuple[str, str], tmp_path: Path
) -> None:
    good, bad = two_runs
    with ScriptedModelServer(responder=fair_judge) as server:
        model = f"{server.base_url}#judge"
        for run_id in (good, bad):
            code, out = cli(capsys, "eval", "judge", "pointwise", run_id, "--model", model)
            assert code == 0, out
        code, out = cli(capsys, "eval", "judge", "pairwise", "--candidate", bad,
                        "--baseline", good, "--model", model)  # fmt: skip
        assert code == 0, out

    # The gate reads the stored verdicts: pointwise scores, and pairwise wins per case.
    code, out = cli(capsys, "eval", "gate", "--candidate", bad, "--baseline", good,
                    "--metric", "judge:answer_relevance@1", "--json")  # fmt: skip
    assert code == 1, out
    res = json.loads(out)
    assert (res["baseline_mean"], res["candidate_mean"], res["n"]) == (1.0, 0.0, 16)
    code, out = cli(capsys, "eval", "gate", "--candidate", good, "--baseline", bad,
                    "--metric", "judge:pairwise", "--json")  # fmt: skip
    assert code == 0, out  # judged the other way round: good won every case
    assert json.loads(out)["candidate_mean"] == 1.0
    code, out = cli(capsys, "eval", "gate", "--candidate", bad, "--baseline", good,
                    "--metric", "judge:correctness")  # fmt: skip
    assert code == 2
    assert "no verdicts of judge 'correctness'" in out

    # Text, JSON and HTML reports all carry the verdicts.
    code, out = cli(capsys, "eval", "report", bad, "--baseline", good,
                    "--gate-metric", "judge:answer_relevance@1")  # fmt: skip
    assert code == 0, out
    assert "judge answer_relevance@1 (pointwise" in out
    assert "mean score 0" in out
    assert "candidate wins 0, baseline wins 16" in out
    assert "FAIL: significant drop" in out
    html = tmp_path / "r.html"
    code, out = cli(capsys, "eval", "report", bad, "--baseline", good, "--json",
                    "--html", str(html))  # fmt: skip
    assert code == 0, out
    data = json.loads(out)
    judges = {j["judge"]: j for j in data["judges"]}
    assert judges["answer_relevance@1"]["mean_score"] == 0.0
    assert judges["answer_relevance@1"]["results"][0]["verdict"] == "1"
    assert judges["pairwise@1"]["baseline_wins"] == 16
    assert judges["pairwise@1"]["baseline_run"] == good
    page = html.read_text()
    assert "<h2>Judges</h2>" in page
    assert "answer_relevance@1 (pointwise)" in page
    assert "baseline wins 16" in page
