"""Eval runs through AgentRunners, metrics per case/component, gates, drift watch, report, load."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from daytwo.evals.bindings import open_profiled_model
from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.gates import gate, watch
from daytwo.evals.load import load_test
from daytwo.evals.promote import promote
from daytwo.evals.report import render_html
from daytwo.evals.runner import AgentResult, CallableRunner
from daytwo.evals.runs import EvalRuns
from daytwo.evals.scoring import Scorer
from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.models import Message
from daytwo.store import Store
from daytwo.store.tables.evals import EvalAlert, EvalMetric, EvalResult
from daytwo.testing import Reply, ScriptedModelServer

CASES = [
    Case(
        key=f"k{i}",
        input=f"question number {i} about refunds",
        expected_output=f"answer {i}",
        reference_facts=[f"answer {i}"],
        relevant_doc_ids=[f"d{i}"],
        expected_tool_calls=[{"name": "lookup", "arguments": {"n": i}}] if i % 2 else [],
        tags=["odd" if i % 2 else "even"],
    )
    for i in range(12)
]


def good(case: Case) -> AgentResult:
    i = int(case.key[1:])  # type: ignore[index]
    return AgentResult(
        output=f"answer {i}",
        retrieved_ids=[f"d{i}", "x"],
        tool_calls=[{"name": "lookup", "arguments": {"n": i}}] if i % 2 else [],
        input_tokens=999,  # what a runner counts is ignored: the trace is the source
    )


def bad(case: Case) -> AgentResult:
    i = int(case.key[1:])  # type: ignore[index]
    if i == 3:
        raise RuntimeError("tool backend down")
    return AgentResult(output="no idea", retrieved_ids=["x", f"d{i}"])


def _seed(store: Store) -> Store:
    gs = GoldenSets(store)
    gs.create("s")
    gs.add("s", CASES)
    return store


@pytest.fixture
def seeded(sqlite_store: Store) -> Store:
    """Most tests run on SQLite only; the first runs on both backends."""
    return _seed(sqlite_store)


def test_run_records_every_metric_per_case_and_component(store: Store) -> None:
    seeded = _seed(store)
    runs = EvalRuns(seeded)
    seen: list[int] = []
    run = runs.run(
        CallableRunner(good, name="agent", version="1"),
        "s@1",
        repeats=2,
        concurrency=3,
        progress=lambda done, total: seen.append(done),
    )
    assert run.status == "completed"
    assert seen[-1] == 24
    m = run.summary["metrics"]
    assert m["fuzzy_match"]["mean"] == pytest.approx(1.0)
    assert m["precision@5"]["mean"] == pytest.approx(0.2)
    assert m["mrr"]["mean"] == 1.0
    assert m["tool_call_accuracy"]["cases"] == 6
    assert m["tool_call_accuracy"]["component"] == "tools"
    assert m["cost_usd"]["component"] == "cost"
    assert run.summary["cases"] == 12
    assert run.summary["results"] == 24
    assert set(run.summary["by_tag"]) == {"odd", "even"}
    with seeded.session() as s:
        components = set(s.scalars(sa.select(EvalMetric.component).distinct()))
    assert {"retrieval", "tools", "output", "cost"} <= components
    assert runs.case_values(run.id, "fuzzy_match") == {c.key: 1.0 for c in CASES}


def _chatting(fn: Callable[[Case], AgentResult], model: Any) -> Callable[[Case], AgentResult]:
    """``fn`` after one real (scripted-server) model call, which the trace records."""

    def run(case: Case) -> AgentResult:
        model.chat([Message(role="user", content=case.input)], max_tokens=8)
        return fn(case)

    return run


def _usage(tokens: int) -> Reply:
    return Reply(
        content="ok",
        usage={"prompt_tokens": tokens, "completion_tokens": 5, "total_tokens": tokens + 5},
    )


def test_gate_fails_on_a_significant_drop_and_passes_on_noise(seeded: Store) -> None:
    runs = EvalRuns(seeded)
    with (
        ScriptedModelServer(default=_usage(10)) as cheap,
        ScriptedModelServer(default=_usage(30)) as dear,
        ExitStack() as stack,
    ):
        small = open_profiled_model(f"{cheap.base_url}#cheap", stack)[0]
        big = open_profiled_model(f"{dear.base_url}#dear", stack)[0]
        base = runs.run(CallableRunner(_chatting(good, small), name="agent", version="1"), "s")
        same = runs.run(CallableRunner(_chatting(good, small), name="agent", version="2"), "s")
        worse = runs.run(CallableRunner(_chatting(bad, big), name="agent", version="3"), "s")
    assert worse.summary["errors"] == 1
    ok = gate(seeded, candidate=same.id, baseline=base.id, metric="fuzzy_match", max_drop=0.05)
    assert ok.passed
    assert ok.exit_code == 0
    fail = gate(seeded, candidate=worse.id, baseline=base.id, metric="fuzzy_match", max_drop=0.05)
    assert not fail.passed
    assert fail.exit_code == 1
    assert fail.stats.ci_high < -0.05
    # Lower-is-better metrics flip: more tokens is a drop.
    tokens = gate(seeded, candidate=worse.id, baseline=base.id, metric="input_tokens")
    assert not tokens.passed
    assert tokens.stats.candidate_mean > tokens.stats.baseline_mean
    # A tolerated drop passes.
    lenient = gate(
        seeded, candidate=worse.id, baseline=base.id, metric="fuzzy_match", max_drop=0.99
    )
    assert lenient.passed
    with pytest.raises(NotFoundError, match="no values of metric 'nope'"):
        gate(seeded, candidate=worse.id, baseline=base.id, metric="nope")
    with pytest.raises(NotFoundError, match="does not exist"):
        gate(seeded, candidate="missing", baseline=base.id, metric="fuzzy_match")
    with pytest.raises(InputError):
        gate(seeded, candidate=worse.id, baseline=base.id, metric="fuzzy_match", max_drop=-1)


def test_watch_raises_a_stored_alert_on_drift(seeded: Store) -> None:
    runs = EvalRuns(seeded)
    agent = CallableRunner(good, name="agent", version="1")
    with pytest.raises(NotFoundError):
        watch(seeded, agent="agent", set_name="s", metric="fuzzy_match")
    for _ in range(3):
        runs.run(agent, "s")
    calm = watch(seeded, agent="agent", set_name="s", metric="fuzzy_match", window=1)
    assert not calm.alert
    last = runs.run(CallableRunner(bad, name="agent", version="2"), "s")
    alert = watch(seeded, agent="agent", set_name="s", metric="fuzzy_match", window=1)
    assert alert.alert
    assert alert.change is not None
    assert alert.change.delta < -0.5
    with seeded.session() as s:
        row = s.scalar(sa.select(EvalAlert))
    assert row is not None
    assert row.run_id == last.id
    assert row.metric == "fuzzy_match"


def test_report_is_self_contained_html_with_svg(seeded: Store, tmp_path: Path) -> None:
    runs = EvalRuns(seeded)
    base = runs.run(CallableRunner(good, name="agent", version="1"), "s")
    cand = runs.run(CallableRunner(bad, name="agent", version="2"), "s")
    html = render_html(runs, cand.id)
    assert base.id[:12] in html  # previous run is the default baseline
    assert html.count("<svg") >= 2
    assert "fuzzy_match" in html
    assert "odd" in html
    assert "RuntimeError: tool backend down" in html
    assert not re.search(r"<script|https?://(?!www\.w3\.org)", html)

    # What a reviewer acts on: inputs, expected and actual outputs (both runs), per-case
    # deltas, the gate verdict with its interval, trace links, readable latencies.
    verdict = gate(seeded, candidate=cand.id, baseline=base.id, metric="fuzzy_match")
    html = render_html(
        runs, cand.id, base.id, gate=verdict, trace_url="http://traces.example/t/{trace_id}"
    )
    assert "question number 5 about refunds" in html  # input
    assert "answer 5" in html  # expected, and the baseline's actual
    assert "no idea" in html  # the candidate's actual
    assert "FAIL: significant drop" in html
    assert f"[{verdict.stats.ci_low:+.4f}, {verdict.stats.ci_high:+.4f}]" in html
    assert re.search(r"class='bad'>-0\.\d+</small>", html)  # a per-case drop, marked
    assert "e+0" not in html  # no 2.261e+04 latencies
    assert re.search(r"\d+ ms|\d+\.\d s", html)
    trace_ids = [r.trace_id for r in runs.results(cand.id) if r.trace_id]
    assert trace_ids
    for trace_id in trace_ids:
        assert f"http://traces.example/t/{trace_id}" in html


def test_gate_as_junit_and_markdown(seeded: Store) -> None:
    import xml.etree.ElementTree as ET

    from daytwo.evals.ci_output import case_changes, junit_xml, markdown_comment
    from daytwo.evals.report import human_ms

    assert [human_ms(v) for v in (812.4, 22610.0, 185_000.0)] == ["812 ms", "22.6 s", "3 min 05 s"]
    runs = EvalRuns(seeded)
    base = runs.run(CallableRunner(good, name="agent", version="1"), "s")
    cand = runs.run(CallableRunner(bad, name="agent", version="2"), "s")
    failing = gate(seeded, candidate=cand.id, baseline=base.id, metric="fuzzy_match")
    changes = case_changes(runs, failing)
    assert changes[0][1] > changes[0][2]  # worst first
    suite = ET.fromstring(junit_xml(failing, changes))
    assert suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure is not None
    assert "fuzzy_match" in (failure.text or "")
    md = markdown_comment(failing, changes, report_url="https://ci.example/report.html")
    assert md.startswith("### ❌ daytwo eval gate failed")
    assert "cases got worse" in md
    assert "[Full report](https://ci.example/report.html)" in md
    passing = gate(seeded, candidate=base.id, baseline=base.id, metric="fuzzy_match")
    assert ET.fromstring(junit_xml(passing)).get("failures") == "0"
    assert markdown_comment(passing).startswith("### ✅")


def test_load_test_figures() -> None:
    import time

    def slowish(case: Case) -> AgentResult:
        time.sleep(0.01)
        if case.key == "k0":
            return AgentResult(output=None, error="boom", cost_usd=0.0)
        return AgentResult(output="x", cost_usd=0.002, input_tokens=3)

    out = load_test(CallableRunner(slowish, name="a"), CASES[:4], concurrency=4, runs=20)
    assert out["runs"] == 20
    assert out["errors"] == 5
    assert out["error_rate"] == 0.25
    assert out["latency_ms"]["p50"] >= 10
    assert out["latency_ms"]["p50"] <= out["latency_ms"]["p95"] <= out["latency_ms"]["p99"]
    assert out["throughput_rps"] > 0
    assert out["cost_per_run_usd"] == pytest.approx(0.0015)
    with pytest.raises(InputError):
        load_test(CallableRunner(slowish, name="a"), CASES, concurrency=0, runs=1)


def test_promote_an_eval_result_with_provenance_and_dedup(seeded: Store) -> None:
    runs = EvalRuns(seeded)
    gs = GoldenSets(seeded)
    gs.create("prod")
    gs.add("prod", [Case(key="seed", input="something unrelated entirely")])
    run = runs.run(CallableRunner(bad, name="agent", version="2"), "s")
    result = next(r for r in runs.results(run.id) if r.case_key == "k5")
    info, case = promote(seeded, result.id, set_name="prod", tags=["low-score"])
    assert info.version == 2
    stored = next(c for c in gs.cases("prod") if c.key == case.resolved_key())
    assert stored.data["input"] == "question number 5 about refunds"
    assert set(stored.data["tags"]) == {"low-score", "promoted"}
    assert stored.data["metadata"]["observed_output"] == "no idea"
    assert stored.provenance["run_id"] == result.id
    assert stored.provenance["agent"] == "agent"
    # a near-duplicate (same question, another case number) is refused, unless forced
    other = next(r for r in runs.results(run.id) if r.case_key == "k6")
    with pytest.raises(ConflictError, match="near-duplicate"):
        promote(seeded, other.id, set_name="prod", tags=["x"], threshold=0.8)
    forced, _ = promote(seeded, other.id, set_name="prod", tags=["x"], threshold=0.8, force=True)
    assert forced.version == 3
    with pytest.raises(NotFoundError, match="no traced run"):
        promote(seeded, "deadbeef", set_name="prod", tags=["x"])


def test_judge_metrics_and_failures_are_recorded(sqlite_store: Store) -> None:
    from daytwo.models import OpenAICompatProvider
    from daytwo.testing import ScriptedModelServer

    gs = GoldenSets(sqlite_store)
    gs.create("j")
    gs.add("j", [Case(key="a", input="q1"), Case(key="b", input="q2")])

    def agent(case: Case) -> AgentResult:
        return AgentResult(output="The answer is here.", retrieved_context=["ctx"])

    # a: relevancy yes, support junk twice (failure); b: relevancy no, support yes.
    script = [
        '{"verdict": "yes"}', "junk", "junk", '{"verdict": "no"}', '{"verdict": "yes"}',
    ]  # fmt: skip
    with ScriptedModelServer(script) as server:
        scorer = Scorer(
            judge_model=OpenAICompatProvider(server.base_url, max_retries=0),
            metrics=["answer_relevancy", "faithfulness"],
        )
        run = EvalRuns(sqlite_store).run(
            CallableRunner(agent, name="j"), "j", scorer=scorer, concurrency=1
        )
    m = run.summary["metrics"]
    assert m["faithfulness"]["missing"] == 1  # the failure is counted, not dropped
    assert m["faithfulness"]["mean"] == 1.0
    assert m["judge_failure"]["mean"] == 0.5
    assert m["answer_relevancy"]["mean"] == pytest.approx((1.0 + 0.0) / 2)


def test_run_input_errors(seeded: Store) -> None:
    runs = EvalRuns(seeded)
    with pytest.raises(NotFoundError):
        runs.run(CallableRunner(good, name="a"), "nope")
    with pytest.raises(NotFoundError):
        runs.run(CallableRunner(good, name="a"), "s@9")
    with pytest.raises(InputError):
        runs.run(CallableRunner(good, name="a"), "s", repeats=0)


def test_cost_tokens_and_latency_come_from_the_trace(seeded: Store) -> None:
    runs = EvalRuns(seeded)
    with ScriptedModelServer(default=_usage(12)) as server, ExitStack() as stack:
        model = open_profiled_model(f"{server.base_url}#m", stack)[0]
        run = runs.run(CallableRunner(_chatting(good, model), name="agent", version="t"), "s")
    m = run.summary["metrics"]
    assert m["input_tokens"]["mean"] == 12.0  # from the chat span, not the runner's 999
    assert m["output_tokens"]["mean"] == 5.0
    assert m["total_tokens"]["mean"] == 17.0
    assert m["latency_ms"]["mean"] > 0
    assert m["cost_usd"]["missing"] == 12  # the ad-hoc profile has no price: unknown, not $0
    with seeded.session() as s:
        results = list(s.scalars(sa.select(EvalResult).where(EvalResult.run_id == run.id)))
        details = [
            row.detail
            for row in s.scalars(
                sa.select(EvalMetric).where(
                    EvalMetric.run_id == run.id, EvalMetric.name == "input_tokens"
                )
            )
        ]
    assert {len(r.trace_id or "") for r in results} == {32}
    assert len({r.trace_id for r in results}) == 12  # one trace per case
    assert {d["source"] for d in details} == {"trace"}
    assert {d["cost_spans"] for d in details} == {1}
