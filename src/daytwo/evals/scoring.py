"""Score one agent result against its golden case, metric by metric and component by component.

Components: ``retrieval`` (precision/recall/nDCG/MRR/hit rate at k against
the relevant ids), ``tools`` (right tool, right arguments), ``output``
(schema validity, exact/fuzzy match, reference-fact recall), ``judge``
(faithfulness and answer relevance by LLM judge; a judge failure is recorded
with value None and ``judge_failure`` = 1, never dropped) and ``cost``
(errors here; tokens, latency and cost are read from the trace after the run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daytwo.evals import metrics as m
from daytwo.evals.cases import Case
from daytwo.evals.judges import ANSWER_RELEVANCE, FAITHFULNESS, ChatModel, PointwiseJudge
from daytwo.evals.runner import AgentResult

__all__ = ["MetricValue", "Scorer"]


@dataclass(frozen=True)
class MetricValue:
    """One metric of one case."""

    component: str
    name: str
    value: float | None
    detail: dict[str, Any] = field(default_factory=dict)


class Scorer:
    """Turns (case, result) into metric values; judges are optional (``judge_model``)."""

    def __init__(self, *, k: int = 5, judge_model: ChatModel | None = None, seed: int = 0) -> None:
        self.k = k
        self.faithfulness = (
            PointwiseJudge(judge_model, FAITHFULNESS, seed=seed) if judge_model else None
        )
        self.relevance = (
            PointwiseJudge(judge_model, ANSWER_RELEVANCE, seed=seed) if judge_model else None
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
        if self.relevance is None or result.output is None:
            return []
        values: list[MetricValue] = []
        failures = 0
        v = self.relevance.score(case.input, result.output)
        failures += v.failed
        values.append(
            MetricValue(
                "judge",
                "answer_relevance",
                v.score,
                {"parse_status": v.parse_status, "raw": v.raw[-1:], "judge": "answer_relevance@1"},
            )
        )
        context = "\n".join(result.retrieved_context)
        if context and self.faithfulness is not None:
            f = self.faithfulness.score(case.input, result.output, context=context)
            failures += f.failed
            values.append(
                MetricValue(
                    "judge",
                    "faithfulness",
                    f.score,
                    {"parse_status": f.parse_status, "raw": f.raw[-1:], "judge": "faithfulness@1"},
                )
            )
        values.append(MetricValue("judge", "judge_failure", float(failures)))
        return values
