"""The evals stage of ``daytwo quickstart``: run the sample golden set, print scores and the gate.

The sample set (``evals/samples/support_golden.jsonl``) is stored as
``sample-support`` (a new version only when the shipped file changed), run
through the given runner (the quickstart passes the runtime's ``support`` agent;
without one, the local model with a keyword retriever over the sample help-centre
documents), and gated against the previous run of the set.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from typing import Any

from daytwo.evals.cases import Case, parse_cases_jsonl
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.gates import gate
from daytwo.evals.runner import AgentRunner, ModelAgentRunner
from daytwo.evals.runs import EvalRuns
from daytwo.evals.samples import SAMPLE_SET_NAME, sample_docs_path, sample_golden_path
from daytwo.store import Store

__all__ = ["GATE_METRIC", "keyword_retriever", "quickstart_stage"]

GATE_METRIC = "fuzzy_match"
_WORD = re.compile(r"\w+")


def keyword_retriever(k: int = 3) -> Any:
    """Top-``k`` sample documents by IDF-weighted word overlap (a plain, real retriever)."""
    import math

    docs = [json.loads(line) for line in sample_docs_path().read_text().splitlines() if line]
    index = [
        (d["id"], d["text"], set(_WORD.findall(f"{d.get('title', '')} {d['text']}".lower())))
        for d in docs
    ]
    df: dict[str, int] = {}
    for _, _, terms in index:
        for t in terms:
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log((len(index) + 1) / (n + 0.5)) for t, n in df.items()}

    def retrieve(case: Case) -> list[tuple[str, str]]:
        words = set(_WORD.findall(case.input.lower()))
        scored = [
            (sum(idf[w] for w in words & terms), doc_id, text) for doc_id, text, terms in index
        ]
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [(doc_id, text) for score, doc_id, text in scored[:k] if score > 0.5]

    return retrieve


def _model_runner(stack: ExitStack, settings: Any) -> AgentRunner:
    """The bare local model with a keyword retriever, when no runtime agent is given."""
    from daytwo.evals.bindings import open_chat_model

    model, label = open_chat_model("local", stack, settings=settings)
    return ModelAgentRunner(
        model, name="sample-support-model", version=label, retrieve=keyword_retriever(),
        max_tokens=64,
    )  # fmt: skip


def quickstart_stage(
    summary: Any,
    settings: Any,
    store: Store,
    *,
    runner: AgentRunner | None = None,
    agent: str = "support",
    max_drop: float = 0.05,
) -> dict[str, Any]:
    """Store the sample set, run it, gate against the previous run; add a row to ``summary``."""
    sets = GoldenSets(store)
    if not sets.exists(SAMPLE_SET_NAME):
        sets.create(SAMPLE_SET_NAME, "Golden set of the sample support agent")
    cases = parse_cases_jsonl(sample_golden_path().read_text(), source="sample golden set")
    version = sets.add(SAMPLE_SET_NAME, cases, replace=True, note="sample set shipped with daytwo")
    runs = EvalRuns(store)
    with ExitStack() as stack:
        active = runner or _model_runner(stack, settings)
        run = runs.run(active, f"{SAMPLE_SET_NAME}@{version.version}", concurrency=1)
    metrics = run.summary.get("metrics", {})
    scores = {
        name: round(metrics[name]["mean"], 4)
        for name in ("fuzzy_match", "fact_recall", "tool_call_accuracy", "ndcg@5", "latency_ms")
        if name in metrics and metrics[name]["mean"] is not None
    }
    previous = runs.previous(run.id)
    verdict = "first run (no baseline)"
    gate_data: dict[str, Any] | None = None
    if previous is not None:
        result = gate(
            store, candidate=run.id, baseline=previous.id, metric=GATE_METRIC, max_drop=max_drop
        )
        gate_data = result.as_dict()
        verdict = (
            f"{'pass' if result.passed else 'FAIL'} vs {previous.id[:8]} "
            f"({GATE_METRIC} {result.stats.mean_delta:+.3f}, "
            f"CI [{result.stats.ci_low:+.3f}, {result.stats.ci_high:+.3f}])"
        )
    detail = (
        f"{SAMPLE_SET_NAME}@{version.version}: {run.summary.get('cases', 0)} cases, "
        + ", ".join(f"{k}={v}" for k, v in scores.items() if k != "latency_ms")
        + f"; gate: {verdict}"
    )
    row = {
        "run_id": run.id,
        "agent": f"{run.agent}@{run.agent_version}",
        "errors": run.summary.get("errors", 0),
        "gate": "pass" if gate_data is None or gate_data["passed"] else "fail",
        **scores,
    }
    summary.add("evals", True, detail, **row)
    return {"run": run.as_dict(), "gate": gate_data, "scores": scores}
