"""Score one agent result against its golden case, metric by metric and component by component.

Components: ``retrieval`` (precision/recall/nDCG/MRR/hit rate at k against
the relevant ids), ``tools`` (right tool, right arguments), ``output``
(schema validity, exact/fuzzy match, reference-fact recall, semantic similarity by
embedding), ``judge`` (the reference-free metrics of :mod:`daytwo.evals.reference_free`:
faithfulness, answer relevancy, context precision and recall, each with the judge's
evidence; a judge failure is recorded with value None and counted in ``judge_failure``,
never dropped) and ``cost`` (errors here; tokens, latency and cost are read from the
trace after the run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from daytwo.evals import metrics as m
from daytwo.evals.cases import Case
from daytwo.evals.dedup import Embedder, default_embedder
from daytwo.evals.judges import ChatModel
from daytwo.evals.reference_free import (
    CONTEXT_METRICS,
    JUDGE_METRICS,
    REFERENCE_FREE_METRICS,
    RefFreeJudge,
    semantic_similarity,
)
from daytwo.evals.runner import AgentResult
from daytwo.exceptions import InputError

__all__ = ["MetricValue", "Scorer", "resolve_metrics"]


@dataclass(frozen=True)
class MetricValue:
    """One metric of one case."""

    component: str
    name: str
    value: float | None
    detail: dict[str, Any] = field(default_factory=dict)


def resolve_metrics(metrics: Sequence[str] | None, *, judge: bool) -> list[str]:
    """The reference-free metrics to compute; unknown names or a missing judge are refused."""
    chosen = list(JUDGE_METRICS if metrics is None and judge else metrics or [])
    unknown = [x for x in chosen if x not in REFERENCE_FREE_METRICS]
    if unknown:
        raise InputError(
            f"unknown metric {unknown[0]!r}",
            hint=f"choose among {', '.join(REFERENCE_FREE_METRICS)}",
        )
    needs = [x for x in chosen if x in JUDGE_METRICS]
    if needs and not judge:
        raise InputError(
            f"metric {needs[0]} needs a judge model",
            hint="pass --judge local (SmolLM2) or --judge URL#model",
        )
    return list(dict.fromkeys(chosen))


def _embedder_name(embedder: Embedder) -> str:
    return str(getattr(embedder, "name", type(embedder).__name__))


class Scorer:
    """Turns (case, result) into metric values.

    ``metrics`` picks among the reference-free metrics (``REFERENCE_FREE_METRICS``);
    by default every judge metric when a ``judge_model`` is given, none otherwise.
    Judge metrics need ``judge_model``; ``semantic_similarity`` needs ``embedder``
    (faithfulness uses it too, to find each claim's passage, falling back to the
    default embedder).
    """

    def __init__(
        self,
        *,
        k: int = 5,
        judge_model: ChatModel | None = None,
        seed: int = 0,
        metrics: Sequence[str] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.k = k
        chosen = resolve_metrics(metrics, judge=judge_model is not None)
        if "semantic_similarity" in chosen and embedder is None:
            raise InputError("semantic_similarity needs an embedder")
        self.metrics = chosen
        self.embedder = embedder
        self.judge = (
            RefFreeJudge(judge_model, embedder or default_embedder(), seed=seed)
            if judge_model is not None and any(x in JUDGE_METRICS for x in chosen)
            else None
        )

    def score(self, case: Case, result: AgentResult) -> list[MetricValue]:
        """Every metric that applies to this case."""
        # Latency, tokens and cost come from the case's trace once the run has ended
        # (daytwo.evals.trace_costs), not from what the runner counted.
        out: list[MetricValue] = [MetricValue("cost", "error", 1.0 if result.error else 0.0)]
        out += self.component_metrics(case, result)
        if case.output_schema is not None:
            out.append(
                MetricValue(
                    "output",
                    "schema_validity",
                    m.schema_validity(result.output, case.output_schema),
                )
            )
        if case.expected_output is not None:
            out.append(
                MetricValue(
                    "output", "exact_match", m.exact_match(result.output, case.expected_output)
                )
            )
            out.append(
                MetricValue(
                    "output", "fuzzy_match", m.fuzzy_match(result.output, case.expected_output)
                )
            )
        if case.reference_facts:
            out.append(
                MetricValue(
                    "output",
                    "fact_recall",
                    m.reference_fact_recall(result.output, case.reference_facts),
                )
            )
        if (
            "semantic_similarity" in self.metrics
            and self.embedder is not None
            and case.expected_output is not None
        ):
            out.append(
                MetricValue(
                    "output",
                    "semantic_similarity",
                    semantic_similarity(self.embedder, result.output, case.expected_output),
                    {"embedder": _embedder_name(self.embedder)},
                )
            )
        out += self._judge(case, result)
        return out

    def component_metrics(self, case: Case, result: AgentResult) -> list[MetricValue]:
        """The retrieval and tool-call metrics (what a case's trace can supply later)."""
        out: list[MetricValue] = []
        relevant: Any = case.graded_relevance or case.relevant_doc_ids
        if relevant:
            k, got = self.k, result.retrieved_ids
            rel_ids = list(relevant)
            out += [
                MetricValue("retrieval", f"precision@{k}", m.precision_at_k(got, rel_ids, k)),
                MetricValue("retrieval", f"recall@{k}", m.recall_at_k(got, rel_ids, k)),
                MetricValue("retrieval", f"ndcg@{k}", m.ndcg_at_k(got, relevant, k)),
                MetricValue("retrieval", "mrr", m.mrr(got, rel_ids)),
                MetricValue("retrieval", f"hit_rate@{k}", m.hit_rate(got, rel_ids, k)),
            ]
        if case.expected_tool_calls or result.tool_calls:
            expected = [c.model_dump() for c in case.expected_tool_calls]
            for name, value in m.tool_call_accuracy(expected, result.tool_calls).items():
                out.append(MetricValue("tools", name, value))
        return out

    def _judge(self, case: Case, result: AgentResult) -> list[MetricValue]:
        """The judge metrics that apply: answer metrics need an answer, context ones passages."""
        judge = self.judge
        if judge is None or result.output is None:
            return []
        passages = [p for p in result.retrieved_context if p]
        ids = list(result.retrieved_ids)
        scored = []
        if "answer_relevancy" in self.metrics:
            scored.append(judge.answer_relevancy(case.input, result.output))
        if passages and "faithfulness" in self.metrics:
            scored.append(judge.faithfulness(result.output, passages, ids))
        wanted = (CONTEXT_METRICS - {"faithfulness"}) & set(self.metrics)
        if passages and wanted:
            context = judge.context_metrics(case.input, passages, ids, self.k)
            scored += [s for s in context if s.name in wanted]
        values = [
            MetricValue(
                "judge",
                s.name,
                s.value,
                {**s.evidence, "embedder": _embedder_name(judge.embedder)}
                if s.name == "faithfulness"
                else s.evidence,
            )
            for s in scored
        ]
        values.append(MetricValue("judge", "judge_failure", float(sum(s.failed for s in scored))))
        return values
