"""explain_run tells, step by step and in plain language, what happened and why."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from daytwo.exceptions import NotFoundError
from daytwo.store import Store
from daytwo.tracing import Price, record_decision, setup_tracing
from daytwo.tracing.explain import explain_run, render_text


class OnePrice:
    def price(self, model: str, at: object, /) -> Price | None:
        return Price(input=Decimal(1), output=Decimal(2)) if model == "m1" else None


def test_explain_run(sqlite_store: Store) -> None:
    handle = setup_tracing(sqlite_store, prices=OnePrice())
    tracer = trace.get_tracer("daytwo.runtime")
    try:
        with tracer.start_as_current_span(
            "invoke_agent helper",
            attributes={
                "daytwo.run.id": "r-42",
                "daytwo.agent.name": "helper",
                "daytwo.agent.version": "3",
                "daytwo.principal": "alice",
            },
        ):
            with tracer.start_as_current_span(
                "step retrieve", attributes={"daytwo.step.id": "s1", "daytwo.step.kind": "retrieve"}
            ):
                with tracer.start_as_current_span(
                    "retrieve docs",
                    attributes={
                        "gen_ai.operation.name": "retrieval",
                        "daytwo.kb.collection": "docs",
                        "daytwo.kb.mode": "hybrid",
                        "daytwo.kb.hits": 4,
                    },
                ):
                    record_decision(
                        "retrieval",
                        "Kept 4 passages; the keyword index contributed 3 of them.",
                        {"scores": [0.9, 0.8, 0.5, 0.4], "indexes": {"bm25": 3, "ann": 1}},
                    )
            with tracer.start_as_current_span("step tool", attributes={"daytwo.step.id": "s2"}):
                record_decision(
                    "tool_choice", "Chose weather v2: lowest p95 latency.", {"p95": 120}
                )
                with tracer.start_as_current_span(
                    "execute_tool weather",
                    attributes={
                        "gen_ai.operation.name": "execute_tool",
                        "gen_ai.tool.name": "weather",
                    },
                ) as t:
                    t.set_status(Status(StatusCode.ERROR, "timeout after 5 s"))
                record_decision("replan", "Weather failed twice; answering without it.", {})
            with tracer.start_as_current_span("chat m1") as c:
                c.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "m1",
                        "gen_ai.usage.input_tokens": 1000,
                        "gen_ai.usage.output_tokens": 500,
                    }
                )
        with tracer.start_as_current_span("unrelated", attributes={"daytwo.run.id": "other"}):
            pass
        handle.flush()
    finally:
        handle.shutdown()
    steps = explain_run(sqlite_store, "r-42")
    assert [s.name for s in steps] == [
        "invoke_agent helper",
        "step retrieve",
        "retrieve docs",
        "step tool",
        "execute_tool weather",
        "chat m1",
    ]
    assert [s.depth for s in steps] == [0, 1, 2, 1, 2, 1]
    assert steps[0].text.startswith("Started run r-42 of agent helper version 3 for alice")
    assert "Searched the collection docs (hybrid search) and found 4 passages" in steps[2].text
    assert steps[2].decisions[0].data["indexes"] == {"bm25": 3, "ann": 1}
    assert [d.kind for d in steps[3].decisions] == ["tool_choice", "replan"]
    assert "It failed: timeout after 5 s." in steps[4].text
    assert "Called the model m1 (1000 tokens in, 500 out, cost $0.002)" in steps[5].text
    text = render_text(steps)
    assert "why (tool choice): Chose weather v2: lowest p95 latency." in text
    assert steps[5].to_dict()["cost_usd"] == "0.002"
    with pytest.raises(NotFoundError, match="no spans recorded for run 'nope'"):
        explain_run(sqlite_store, "nope")
