"""Telemetry-aware tool choice, circuit breaking, LLM steps and planner mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daytwo.exceptions import NoToolAvailable
from daytwo.runtime import (
    PythonTools,
    Runtime,
    StaticTelemetry,
    ToolStats,
    load_spec,
)
from daytwo.runtime.adapters import ModelLLM
from daytwo.runtime.choice import choose_tool
from daytwo.testing import Reply, ScriptedModelServer, scripted_chat_model

STATUS_SPEC = {
    "name": "status",
    "slo": {"latency_ms": 800, "max_error_rate": 0.3},
    "steps": [
        {
            "id": "order",
            "kind": "tool",
            "capability": "orders.status",
            "prefer": ["cached", "live"],
            "arguments": {"order_id": "{{ input.id }}"},
        }
    ],
}


def test_fast_tool_while_within_slo_slow_one_when_it_degrades_and_back(
    runtime: Runtime, tools: PythonTools, telemetry: StaticTelemetry
) -> None:
    tools.add("cached", lambda order_id, idempotency_key: "cache", capability="orders.status")
    tools.add("live", lambda order_id, idempotency_key: "live", capability="orders.status")
    runtime.registry.register(load_spec(STATUS_SPEC))
    live = ToolStats(p50_ms=300, p95_ms=500, p99_ms=600, calls=50, cost_usd=0.0)
    telemetry.set("live", live)

    def chosen(cached: ToolStats) -> tuple[str, dict[str, Any]]:
        telemetry.set("cached", cached)
        run = runtime.start("status", {"id": "A-1"})
        assert run["status"] == "succeeded", run["error"]
        decision = next(d for d in run["decisions"] if d["kind"] == "tool_choice")
        return run["outputs"]["steps"]["order"], decision

    out, decision = chosen(ToolStats(p50_ms=1, p95_ms=2, p99_ms=3, calls=100))
    assert out == "cache"
    assert decision["data"]["rule"] == "first preferred tool within latency and cost budget"
    assert {c["tool"] for c in decision["data"]["candidates"]} == {"cached", "live"}

    out, decision = chosen(ToolStats(p50_ms=700, p95_ms=1500, p99_ms=2500, calls=100))
    assert out == "live"
    cached_row = next(c for c in decision["data"]["candidates"] if c["tool"] == "cached")
    assert cached_row["p99_ms"] == 2500
    assert "over budget" in cached_row["verdict"]

    out, _ = chosen(ToolStats(p50_ms=1, p95_ms=2, p99_ms=4, calls=200))
    assert out == "cache"

    # Circuit breaker: a fast tool failing too often is skipped.
    out, decision = chosen(ToolStats(p99_ms=3, calls=100, error_rate=0.9))
    assert out == "live"
    assert "circuit open" in decision["data"]["candidates"][0]["verdict"]


def test_choice_rules_without_a_fitting_tool() -> None:
    tel = StaticTelemetry(
        {"a": ToolStats(p99_ms=900, calls=5), "b": ToolStats(p99_ms=500, calls=5)}
    )
    choice = choose_tool(
        "cap", ["a", "b"], tel, latency_budget_ms=100, cost_budget_usd=1, max_error_rate=0.5
    )
    assert choice.tool == "b"
    assert choice.rule == "none within budget: lowest p99"
    tel.set("a", ToolStats(error_rate=1.0, calls=5))
    tel.set("b", ToolStats(error_rate=1.0, calls=5))
    with pytest.raises(NoToolAvailable, match="circuit open"):
        choose_tool(
            "cap", ["a", "b"], tel, latency_budget_ms=1e9, cost_budget_usd=1, max_error_rate=0.5
        )


def test_llm_step_structured_answer_and_retry_on_429(runtime: Runtime) -> None:
    script = [
        Reply(status=429, retry_after=0.05),
        Reply(content='{"answer": "Reset it in settings", "needs_human": false'),
    ]
    with ScriptedModelServer(script) as server:
        llm = scripted_chat_model(server.base_url, price_in="1", price_out="2")
        runtime.services.llm = ModelLLM(llm)
        spec = {
            "name": "asker",
            "steps": [
                {
                    "id": "a",
                    "kind": "llm",
                    "prompt": "Q: {{ input.q }}",
                    "schema": {
                        "type": "object",
                        "properties": {"answer": {"type": "string"}},
                        "required": ["answer"],
                    },
                }
            ],
            "output": "a",
        }
        runtime.registry.register(load_spec(spec))
        run = runtime.start("asker", {"q": "how do I reset my password?"})
        llm.close()
        assert len(server.requests) == 2
    assert run["status"] == "succeeded", run["error"]
    assert run["outputs"]["answer"]["answer"] == "Reset it in settings"
    assert run["tokens"] > 0
    assert run["cost_usd"] > 0
    assert "Q: how do I reset my password?" in json.dumps(server.requests[-1]["messages"])


def test_planner_replans_with_a_validated_llm_plan(runtime: Runtime, tools: PythonTools) -> None:
    from daytwo.exceptions import BackendError

    def broken(idempotency_key: str, **kw: Any) -> Any:
        raise BackendError("gone")

    tools.add("legacy_lookup", broken)
    tools.add("lookup_v2", lambda sku, idempotency_key: {"sku": sku, "stock": 4})
    bad_plan = json.dumps({"calls": [{"tool": "rm_rf", "arguments": {}}]})
    good_plan = json.dumps({"calls": [{"tool": "lookup_v2", "arguments": {"sku": "A1"}}]})
    with ScriptedModelServer([bad_plan, good_plan]) as server:
        llm = scripted_chat_model(server.base_url)
        runtime.services.llm = ModelLLM(llm)
        spec = {
            "name": "planned",
            "planner": True,
            "retry": {"attempts": 1},
            "steps": [
                {"id": "stock", "kind": "tool", "tool": "legacy_lookup"},
                {
                    "id": "plan",
                    "kind": "plan",
                    "goal": "find the stock of {{ input.sku }}",
                    "tools": ["lookup_v2"],
                    "after": ["stock"],
                },
            ],
        }
        runtime.registry.register(load_spec(spec))
        run = runtime.start("planned", {"sku": "A1"})
        llm.close()
    # The first plan (an unknown tool) is rejected before anything runs; the run fails
    # at that step with the reason recorded.
    assert run["status"] == "failed"
    verdicts = [d["data"].get("verdict") for d in run["decisions"] if d["kind"] == "replan"]
    assert any(v and "rejected: unknown or disallowed tools ['rm_rf']" in v for v in verdicts)
    strategies = [d["data"].get("strategy") for d in run["decisions"]]
    assert "llm_plan" in strategies


def test_plan_step_runs_the_accepted_calls(runtime: Runtime, tools: PythonTools) -> None:
    tools.add("lookup_v2", lambda sku, idempotency_key: {"sku": sku, "stock": 4})
    plan = json.dumps(
        {
            "calls": [
                {"tool": "lookup_v2", "arguments": {"sku": "A1"}},
                {"tool": "lookup_v2", "arguments": {"sku": "B2"}},
            ]
        }
    )
    with ScriptedModelServer([plan]) as server:
        llm = scripted_chat_model(server.base_url)
        runtime.services.llm = ModelLLM(llm)
        runtime.registry.register(
            load_spec(
                {
                    "name": "p2",
                    "steps": [
                        {"id": "plan", "kind": "plan", "goal": "stock", "tools": ["lookup_v2"]}
                    ],
                }
            )
        )
        run = runtime.start("p2", {})
        llm.close()
    assert run["status"] == "succeeded", run["error"]
    assert run["outputs"]["steps"]["plan"] == [{"sku": "A1", "stock": 4}, {"sku": "B2", "stock": 4}]
    assert run["decisions"][0]["data"]["verdict"] == "accepted"
