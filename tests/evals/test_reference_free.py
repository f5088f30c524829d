"""Reference-free metrics: the formulas, the judge's evidence stored with each value, judge
failures counted, and semantic similarity on the real MiniLM embedder.

The judge is the scripted OpenAI-compatible server (a real HTTP model protocol); its
verdicts come from reading the prompt it is sent, like a reader would.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.dedup import NgramEmbedder
from daytwo.evals.reference_free import (
    average_precision,
    pooled_recall,
    semantic_similarity,
    split_claims,
)
from daytwo.evals.report import render_html, report_data
from daytwo.evals.runner import AgentResult, CallableRunner
from daytwo.evals.runs import EvalRuns
from daytwo.evals.scoring import Scorer, resolve_metrics
from daytwo.exceptions import InputError
from daytwo.models import OpenAICompatProvider
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer

PASSAGES = [
    "Refunds are accepted within 30 days of delivery.",
    "Shipping is free on orders over 50 euros.",
    "Our office cat is called Biscuit.",
    "Refunds are paid back to the original card.",
    "The warehouse is in Lyon.",
    "Refunds need the order number.",
]
IDS = [f"doc-{i}" for i in range(len(PASSAGES))]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def reader(request: dict[str, Any]) -> str:
    """Supported when every word of the claim is in the passage; relevant when about refunds."""
    user = str(request["messages"][-1]["content"])
    if user.startswith("Passage:"):
        passage, claim = re.match(r"Passage: (.*)\n\nClaim: (.*)\n\n", user, re.S).groups()  # type: ignore[union-attr]
        yes = _words(claim) <= _words(passage)
    elif "\n\nStatement:" in user:
        yes = "refund" in user.split("Statement:", 1)[1].lower()
    else:
        yes = "refund" in user.split("Passage:", 1)[1].lower()
    return json.dumps({"verdict": "yes" if yes else "no"})


def test_formulas() -> None:
    # Ragas' average precision: relevant at ranks 1 and 3 -> (1/1 + 2/3) / 2.
    assert average_precision([True, False, True]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([False, False]) == 0.0
    assert pooled_recall([True, False, True, True], 2) == pytest.approx(1 / 3)
    assert pooled_recall([True, False], 2) is None  # no deeper pool: undefined, not 1.0
    assert pooled_recall([False, False, False], 1) is None
    assert split_claims("Refunds take 30 days. Shipping is free!\n- Ask us") == [
        "Refunds take 30 days.",
        "Shipping is free!",
        "Ask us",
    ]


def test_metric_names_and_judge_are_checked() -> None:
    assert resolve_metrics(None, judge=False) == []
    assert resolve_metrics(None, judge=True)[0] == "faithfulness"
    with pytest.raises(InputError, match="unknown metric 'bleu'"):
        resolve_metrics(["bleu"], judge=True)
    with pytest.raises(InputError, match="faithfulness needs a judge model"):
        resolve_metrics(["faithfulness"], judge=False)


def _run(store: Store, scorer: Scorer, answer: str) -> tuple[EvalRuns, Any]:
    gs = GoldenSets(store)
    gs.create("rf")
    gs.add("rf", [Case(key="refund", input="How long do I have to ask for a refund?")])

    def agent(case: Case) -> AgentResult:
        return AgentResult(output=answer, retrieved_ids=IDS, retrieved_context=PASSAGES)

    runs = EvalRuns(store)
    return runs, runs.run(CallableRunner(agent, name="rf"), "rf", scorer=scorer, concurrency=1)


def test_judge_metrics_and_their_evidence_are_stored(sqlite_store: Store) -> None:
    answer = "Refunds are accepted within 30 days of delivery. Refunds are paid in cash."
    with ScriptedModelServer(responder=reader) as server:
        judge = OpenAICompatProvider(server.base_url, model="judge", max_retries=0)
        runs, run = _run(sqlite_store, Scorer(k=2, judge_model=judge), answer)
        # 2 support checks + 2 relevance checks + 6 passage verdicts
        assert len(server.requests) == 10
    m = run.summary["metrics"]
    assert m["faithfulness"]["mean"] == 0.5  # the cash claim is in no passage
    assert m["answer_relevancy"]["mean"] == 1.0
    # relevant passages at ranks 1, 4, 6: AP = (1 + 2/4 + 3/6) / 3; recall@2 = 1/3
    assert m["context_precision"]["mean"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["context_recall"]["mean"] == pytest.approx(1 / 3)
    assert m["judge_failure"]["mean"] == 0.0
    rows = {r.name: r for r in runs.metric_rows(run.id)}
    claims = rows["faithfulness"].detail["claims"]
    assert [c["supported"] for c in claims] == [True, False]
    assert claims[0]["passage_id"] == "doc-0"  # the passage that supports it, by id
    assert claims[0]["passage"] == PASSAGES[0]
    assert rows["faithfulness"].detail["judge"].startswith("refree@1:")
    verdicts = [p["relevant"] for p in rows["context_precision"].detail["passages"]]
    assert verdicts == [True, False, False, True, False, True]

    # The report carries the evidence: JSON per case, HTML folded under each case.
    data = report_data(runs, run.id)
    evidence = data["cases"][0]["judge_evidence"]
    assert evidence["faithfulness"]["claims"][1]["claim"] == "Refunds are paid in cash."
    page = render_html(runs, run.id)
    assert "<th>judge evidence</th>" in page
    assert "✘ Refunds are paid in cash." in page
    assert "#3 (doc-2) not relevant" in page


def test_a_judge_failure_is_counted_never_a_partial_score(sqlite_store: Store) -> None:
    def flaky(request: dict[str, Any]) -> str:
        user = str(request["messages"][-1]["content"])
        if "paid in cash" in user:
            return "I cannot decide"  # never JSON, even when asked again
        return reader(request)

    answer = "Refunds are accepted within 30 days of delivery. Refunds are paid in cash."
    with ScriptedModelServer(responder=flaky) as server:
        judge = OpenAICompatProvider(server.base_url, model="judge", max_retries=0)
        runs, run = _run(
            sqlite_store,
            Scorer(judge_model=judge, metrics=["faithfulness", "answer_relevancy"]),
            answer,
        )
    m = run.summary["metrics"]
    assert m["faithfulness"]["mean"] is None
    assert m["faithfulness"]["missing"] == 1
    assert m["answer_relevancy"]["missing"] == 1
    assert m["judge_failure"]["mean"] == 2.0
    assert "context_precision" not in m  # not asked for
    row = next(r for r in runs.metric_rows(run.id) if r.name == "faithfulness")
    assert row.detail["reason"] == "a verdict failed"
    assert row.detail["claims"][1]["parse_status"] == "failed"


def test_semantic_similarity_on_minilm() -> None:
    from daytwo.knowledge.embedders import get_embedder

    minilm = get_embedder("minilm-l6-int8")
    same = semantic_similarity(minilm, "You have 30 days to return it.", "Returns: within a month.")
    other = semantic_similarity(minilm, "The warehouse is in Lyon.", "Returns: within a month.")
    assert 0.0 <= other < same <= 1.0
    assert semantic_similarity(minilm, None, "x") == 0.0
    scorer = Scorer(metrics=["semantic_similarity"], embedder=NgramEmbedder())
    values = scorer.score(Case(input="q", expected_output="abc def"), AgentResult(output="abc def"))
    sim = next(v for v in values if v.name == "semantic_similarity")
    assert sim.value == pytest.approx(1.0)
    assert sim.detail["embedder"] == "ngram-hash-512"
