"""The quickstart stage (sample golden set + gate vs the previous run) and the real local model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from daytwo.evals.cases import Case
from daytwo.evals.quickstart import keyword_retriever, quickstart_stage
from daytwo.evals.runner import AgentResult, CallableRunner
from daytwo.store import Store


@dataclass
class Summary:
    stages: list[dict[str, Any]] = field(default_factory=list)

    def add(self, stage: str, ok: bool, detail: str, **data: Any) -> None:
        self.stages.append({"stage": stage, "ok": ok, "detail": detail, **data})


def test_quickstart_stage_runs_the_sample_set_and_gates(sqlite_store: Store) -> None:
    def parrot(case: Case) -> AgentResult:
        return AgentResult(output=case.expected_output)

    def mute(case: Case) -> AgentResult:
        return AgentResult(output="")

    summary = Summary()
    first = quickstart_stage(summary, None, sqlite_store, runner=CallableRunner(parrot, name="qs"))
    assert first["gate"] is None
    assert summary.stages[0]["stage"] == "evals"
    assert "first run" in summary.stages[0]["detail"]
    assert first["scores"]["fuzzy_match"] == 1.0
    again = quickstart_stage(summary, None, sqlite_store, runner=CallableRunner(parrot, name="qs"))
    assert again["gate"]["passed"] is True
    assert again["run"]["set_version"] == first["run"]["set_version"]  # same shipped file
    worse = quickstart_stage(summary, None, sqlite_store, runner=CallableRunner(mute, name="qs"))
    assert worse["gate"]["passed"] is False
    assert summary.stages[-1]["gate"] == "fail"
    assert "FAIL" in summary.stages[-1]["detail"]


def test_keyword_retriever_finds_the_sample_docs() -> None:
    hits = keyword_retriever()(Case(input="How do I reset my password?"))
    assert hits[0][0] == "password-reset.txt"  # the knowledge layer's id of that sample file


@pytest.mark.local_model
@pytest.mark.slow
def test_local_model_as_pairwise_judge() -> None:
    from daytwo.evals.judges import PAIRWISE, PairwiseJudge
    from daytwo.models import LocalModelServer, LocalModelSettings, OpenAICompatProvider

    with LocalModelServer(LocalModelSettings(n_ctx=1024)) as server:
        provider = OpenAICompatProvider(server.base_url, timeout=300)
        verdict = PairwiseJudge(provider, PAIRWISE).compare(
            "How long is the refund window?",
            "30 days after delivery.",
            "Our office is in Berlin.",
        )
        provider.close()
    # Constrained decoding makes both orders parse; the preference itself is the model's.
    assert verdict.verdict in {"a", "b", "tie"}
    assert verdict.parse_status in {"ok", "repaired"}
    assert verdict.consistent is (verdict.first == verdict.second)
