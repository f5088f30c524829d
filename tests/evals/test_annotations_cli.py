"""`daytwo eval judge list|agreement`: human labels of judge verdicts, Cohen's κ per version."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from daytwo.cli._context import state
from daytwo.cli.main import run
from daytwo.evals.annotations import annotate, find_judge, next_item
from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.judges import PAIRWISE
from daytwo.evals.judging import judge_pairwise
from daytwo.evals.runner import CallableRunner
from daytwo.evals.runs import EvalRuns
from daytwo.models.openai_compat import OpenAICompatProvider
from daytwo.store.tables.evals import EvalJudgement
from daytwo.testing import ScriptedModelServer


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    state.reset()
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def _first_shown(request: dict[str, Any]) -> str:
    return '{"winner": "A"}'  # a position-biased judge: every pair ends a tie


def test_agreement_from_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "db", "upgrade")[0] == 0
    store = state.store()
    sets = GoldenSets(store)
    sets.create("math")
    sets.add(
        "math", [Case(key=f"k{i}", input=f"{i} + 1?", expected_output=str(i + 1)) for i in range(4)]
    )
    runs = EvalRuns(store)
    good = runs.run(CallableRunner(lambda c: str(c.expected_output), name="a", version="1"), "math")
    bad = runs.run(CallableRunner(lambda c: "?", name="a", version="2"), "math")
    with ScriptedModelServer(responder=_first_shown) as server:
        model = OpenAICompatProvider(server.base_url, model="scripted")
        try:
            judge_pairwise(runs, model, PAIRWISE, bad.id, good.id)
        finally:
            model.close()
    judge = find_judge(store, "pairwise@1")
    # Two reviewers: agree on k0, k1 (baseline), k2 (tie); differ on k3.
    wanted = {
        "r1": {"k0": "baseline", "k1": "baseline", "k2": "tie", "k3": "baseline"},
        "r2": {"k0": "baseline", "k1": "baseline", "k2": "tie", "k3": "candidate"},
    }
    for reviewer, labels in wanted.items():
        while (item := next_item(store, judge, reviewer, None)) is not None:
            annotate(store, item.judgement_id, reviewer, labels[item.case_key], None,
                     shown_first=item.shown_first)  # fmt: skip
    code, out = cli(capsys, "eval", "judge", "agreement", "pairwise@1", "--json")
    assert code == 0, out
    got = json.loads(out)
    # By hand: p_o = 3/4; r1 (baseline 3/4, tie 1/4), r2 (baseline 1/2, tie 1/4,
    # candidate 1/4): p_e = 3/8 + 1/16 = 7/16; κ = (12/16 - 7/16) / (9/16) = 5/9.
    assert got["reviewers"]["kappa"] == round(5 / 9, 4)
    # The judge said tie on all four: κ against humans is 0 (no better than chance).
    assert got["judge_vs_humans"]["agreement"] == 0.25
    assert got["judge_vs_humans"]["kappa"] == 0.0
    code, out = cli(capsys, "eval", "judge", "agreement", "pairwise@1")
    assert code == 0
    assert "0.56" in out
    code, out = cli(capsys, "eval", "judge", "list", "--json")
    assert [(j["ref"], j["verdicts"], j["annotated"]) for j in json.loads(out)] == [
        ("pairwise@1", 4, 4)
    ]
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(EvalJudgement)) == 4
    for bad_ref, message in (("pairwise", "has no version"), ("nosuch@1", "no judge 'nosuch@1'")):
        code, out = cli(capsys, "eval", "judge", "agreement", bad_ref)
        assert code != 0
        assert message in out
        assert "Traceback" not in out


def test_review_from_the_cli_needs_a_reason_to_reject_and_audits_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from daytwo.tracing.audit import AuditLog

    assert cli(capsys, "db", "upgrade")[0] == 0
    sets = GoldenSets(state.store())
    sets.create("syn")
    props = sets.propose(
        "syn",
        [Case(key=f"p{i}", input=f"question {i}?") for i in range(2)],
        {"source": "synthesis"},
    )
    code, out = cli(capsys, "eval", "review", "--set", "syn", "--reject", props[0].id[:8])
    assert code == 2
    assert "a reason is required to reject" in out
    assert len(GoldenSets(state.store()).proposed("syn")) == 2  # nothing written
    code, out = cli(capsys, "eval", "review", "--set", "syn", "--reject", props[0].id[:8],
                    "--accept", props[1].id[:8], "--reason", "off topic", "--json")  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["rejected"] == 1
    sets = GoldenSets(state.store())
    assert [c.key for c in sets.cases("syn")] == ["p1"]
    assert sets.cases("syn")[0].provenance["review"]["reason"] == "off topic"
    records = [r for r in AuditLog(state.store()).records() if r.kind == "eval.case.review"]
    assert [(r.subject, r.data["decided"], r.data["reason"]) for r in records] == [
        ("syn", ["p0", "p1"], "off topic")
    ]
