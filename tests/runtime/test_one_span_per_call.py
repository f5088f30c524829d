"""One span per model call and one per tool call, opened by the layer that makes the call.

A run of the sample support agent shape (retrieve -> capability tool -> structured LLM
answer) on a priced profile over the scripted OpenAI-compatible server, through the
real gateway and the real models layer: the runtime's step spans carry no usage and
no cost, the ledger needs no wrapper detection, and the run record's cost (the budget
meter's) is the ledger's, cached input tokens included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.gateway import Gateway
from daytwo.gateway.samples import register_samples
from daytwo.models import get_model, load_profiles
from daytwo.models.profiles import PriceBook
from daytwo.runtime import CallableRetriever, Runtime, Services, load_spec
from daytwo.runtime.adapters import GatewayTelemetry, GatewayTools, ModelLLM
from daytwo.store import Store
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow
from daytwo.testing import Reply, ScriptedModelServer
from daytwo.tracing import TracingHandle, setup_tracing
from daytwo.tracing.ledger import rollup

PROFILE = "openai/gpt-4o-mini"  # priced: input 0.15, cached 0.075, output 0.60 per 1M
USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 40,
    "total_tokens": 1240,
    "prompt_tokens_details": {"cached_tokens": 1000},
}
SPEC = {
    "name": "support",
    "model": PROFILE,
    "steps": [
        {"id": "docs", "kind": "retrieve", "collection": "kb", "query": "{{ input.q }}"},
        {
            "id": "order",
            "kind": "tool",
            "capability": "orders.status",
            "arguments": {"order_id": "A-1001"},
        },
        {
            "id": "answer",
            "kind": "llm",
            "prompt": "Q: {{ input.q }} {{ steps.order }}",
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
            },
            "after": ["docs", "order"],
        },
        {
            "id": "each",
            "kind": "map",
            "items": "input.orders",
            "tool": "orders_status_cached",
            "arguments": {"order_id": "{{ item }}"},
            "after": ["answer"],
        },
    ],
    "output": "answer",
}
ORDERS = ["A-1001", "A-1002", "A-1003"]


def _calls_per_step(spans: Sequence[SpanRow]) -> dict[tuple[str, str], Counter[str]]:
    """For each runtime step span, (run id, step id): the GenAI operations of the
    spans below it, counted (every descendant, so a span nested in another counts)."""
    by_id = {sp.span_id: sp for sp in spans}
    steps = {
        sp.span_id: (str(sp.attributes["daytwo.run.id"]), str(sp.attributes["daytwo.step.id"]))
        for sp in spans
        if sp.scope == "daytwo.runtime" and sp.name.startswith("step ")
    }
    counts: dict[tuple[str, str], Counter[str]] = {key: Counter() for key in steps.values()}
    for sp in spans:
        if sp.operation is None or sp.span_id in steps:
            continue
        parent = sp.parent_span_id
        while parent is not None and parent in by_id and parent not in steps:
            parent = by_id[parent].parent_span_id
        if parent in steps:
            counts[steps[parent]][sp.operation] += 1
    return counts


@pytest.fixture
def traced(sqlite_store: Store) -> Iterator[TracingHandle]:
    handle = setup_tracing(sqlite_store, prices=PriceBook(load_profiles()))
    try:
        yield handle
    finally:
        handle.shutdown()


def test_one_usage_bearing_span_per_call_and_run_cost_equals_the_ledger(
    sqlite_store: Store,
    traced: TracingHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    replies = [Reply(content='{"answer": "Use the reset link."}', usage=USAGE)]  # type: ignore[arg-type]
    with ScriptedModelServer(replies * 2) as server:
        gateway = Gateway(sqlite_store)
        register_samples(gateway)
        model = get_model(PROFILE, base_url=server.base_url, max_retries=0)
        services = Services(
            tools=GatewayTools(gateway),
            telemetry=GatewayTelemetry(gateway),
            retriever=CallableRetriever(lambda c, q, k: [{"text": "Use the reset link."}]),
            llm=ModelLLM(model),
        )
        with Runtime(sqlite_store, services, data_dir=tmp_path) as rt:
            rt.registry.register(load_spec(SPEC))
            runs = [
                rt.start("support", {"q": q, "orders": ORDERS}, principal="alice")
                for q in ("a", "b")
            ]
        model.close()
    traced.flush()
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]

    with sqlite_store.session() as s:
        spans = list(s.scalars(sa.select(SpanRow)))
        records = {r.id: r.cost_usd for r in s.scalars(sa.select(RunRecord))}
    with_usage = [sp for sp in spans if (sp.attributes or {}).get("gen_ai.usage.input_tokens")]
    chats = [sp for sp in spans if sp.operation == "chat"]
    tools = [sp for sp in spans if sp.operation == "execute_tool"]
    # Per run: one model call and 1 + 3 tool calls (the step, the map's items):
    # one span each, no more.
    assert len(chats) == 2
    assert len(tools) == 2 * (1 + len(ORDERS))
    assert with_usage == chats
    # Counted per call: below each step span, exactly one span per call it made.
    # (When the runtime opened its own chat / execute_tool span around the layer's,
    # every call counted twice here.)
    per_step = _calls_per_step(spans)
    for run in runs:
        assert per_step[(run["id"], "docs")] == Counter()
        assert per_step[(run["id"], "order")] == Counter({"execute_tool": 1})
        assert per_step[(run["id"], "answer")] == Counter({"chat": 1})
        assert per_step[(run["id"], "each")] == Counter({"execute_tool": len(ORDERS)})
    # Every call's span is below a step span (the models layer's structured-output
    # span may sit in between): the counts above cover them all.
    assert sum(sum(c.values()) for c in per_step.values()) == len(chats) + len(tools)
    assert {sp.scope for sp in chats} == {"daytwo.models"}
    assert {sp.scope for sp in tools} == {"daytwo.gateway"}
    assert all(sp.cost_status == "priced" for sp in chats + tools)
    # The runtime's own spans carry no usage or cost; a run is an OTel GenAI agent
    # invocation (operation invoke_agent), a step has no GenAI operation.
    runtime_spans = [sp for sp in spans if sp.scope == "daytwo.runtime"]
    assert {sp.name.split()[0] for sp in runtime_spans} == {"run", "step"}
    for sp in runtime_spans:
        kind = sp.name.split()[0]
        assert sp.operation == ("invoke_agent" if kind == "run" else None), sp.name
        assert sp.cost_status is None
        assert not any(k.startswith("gen_ai.usage") for k in sp.attributes or {})
        assert "daytwo.tool.cost_usd" not in (sp.attributes or {})
    assert not any(sp.cost_status == "wrapper" for sp in spans)

    # The run's cost is the ledger's, cache discount included:
    # (200 x 0.15 + 1000 x 0.075 + 40 x 0.60) / 1M for the model call + the tools' prices.
    model_cost = (200 * Decimal("0.15") + 1000 * Decimal("0.075") + 40 * Decimal("0.60")) / 10**6
    by_run = {r.key: r.cost_usd for r in rollup(sqlite_store, "run")}
    tool_costs: dict[str, Decimal] = {}
    step_run = {sp.span_id: str(sp.run_id) for sp in spans if sp.name.startswith("step ")}
    for sp in tools:  # a tool span's parent is its step span
        run_id = step_run[str(sp.parent_span_id)]
        tool_costs[run_id] = tool_costs.get(run_id, Decimal(0)) + Decimal(str(sp.cost_usd))
    for run in runs:
        expected = model_cost + tool_costs[run["id"]]
        assert by_run[run["id"]] == expected
        assert Decimal(str(records[run["id"]])) == expected
        assert Decimal(str(run["cost_usd"])) == expected
