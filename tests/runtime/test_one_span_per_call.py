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
from daytwo.models.profiles import PriceBook, ProfileRegistry
from daytwo.runtime import CallableRetriever, Runtime, Services, load_spec
from daytwo.runtime.adapters import GatewayTelemetry, GatewayTools, ModelLLM
from daytwo.store import Store
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow
from daytwo.testing import Reply, ScriptedModelServer, scripted_chat_model, scripted_profile
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


def test_run_cost_is_the_ledger_sum_to_the_last_digit(sqlite_store: Store, tmp_path: Path) -> None:
    """Prices whose costs need more than six decimals, cached tokens, two model calls and
    several tool calls: the run's cost (the budget meter's) is the ledger's sum exactly,
    not a float sum rounded to the micro-dollar."""
    price = {"price_in": "2.5", "price_cached": "1.25", "price_out": "10"}
    registry = ProfileRegistry({"scripted": scripted_profile(**price)})  # type: ignore[arg-type]
    handle = setup_tracing(sqlite_store, prices=PriceBook(registry))
    spec = {
        "name": "exact",
        "model": "scripted",
        "steps": [
            {"id": "first", "kind": "llm", "prompt": "one {{ input.q }}"},
            {"id": "second", "kind": "llm", "prompt": "two", "after": ["first"]},
            {"id": "live", "kind": "tool", "tool": "orders_status_live",
             "arguments": {"order_id": "A-1001"}, "after": ["second"]},
            {"id": "each", "kind": "map", "items": "input.orders",
             "tool": "orders_status_cached", "arguments": {"order_id": "{{ item }}"},
             "after": ["live"]},
        ],
        "output": "second",
    }  # fmt: skip
    cached = {"prompt_tokens": 1237, "completion_tokens": 41, "total_tokens": 1278,
              "prompt_tokens_details": {"cached_tokens": 999}}  # fmt: skip
    plain = {"prompt_tokens": 333, "completion_tokens": 17, "total_tokens": 350}
    replies = [Reply(content="ok", usage=cached), Reply(content="ok", usage=plain)]  # type: ignore[arg-type]
    try:
        with ScriptedModelServer(replies) as server:
            gateway = Gateway(sqlite_store)
            register_samples(gateway)
            model = scripted_chat_model(server.base_url, **price)  # type: ignore[arg-type]
            services = Services(
                tools=GatewayTools(gateway),
                telemetry=GatewayTelemetry(gateway),
                llm=ModelLLM(model),
            )
            with Runtime(sqlite_store, services, data_dir=tmp_path) as rt:
                rt.registry.register(load_spec(spec))
                run = rt.start("exact", {"q": "x", "orders": ORDERS}, principal="alice")
            model.close()
        handle.flush()
    finally:
        handle.shutdown()
    assert run["status"] == "succeeded", run

    # (238 x 2.5 + 999 x 1.25 + 41 x 10) + (333 x 2.5 + 17 x 10) per 1M, + 0.002 + 3 x 0.0001
    expected = Decimal("0.00225375") + Decimal("0.0010025") + Decimal("0.002") + Decimal("0.0003")
    with sqlite_store.session() as s:
        record = s.get(RunRecord, run["id"])
        assert record is not None
    by_run = {r.key: r for r in rollup(sqlite_store, "run")}
    assert by_run[run["id"]].priced_spans == 2 + 1 + len(ORDERS)
    assert by_run[run["id"]].unpriced_spans == 0
    assert by_run[run["id"]].cost_usd == expected
    assert Decimal(str(record.cost_usd)) == expected
    assert Decimal(str(run["cost_usd"])) == expected


PAID = {"price_in": "2.5", "price_cached": "1.25", "price_out": "10"}
USED = {"prompt_tokens": 411, "completion_tokens": 23, "total_tokens": 434}
PER_CALL = (411 * Decimal("2.5") + 23 * Decimal(10)) / 10**6  # 0.0012575


def _failed_run_cost(
    store: Store, tmp_path: Path, spec: dict[str, object], replies: list[Reply]
) -> tuple[dict[str, object], int, Decimal]:
    """Run ``spec`` (it fails) on the PAID profile over ``replies``, with a tool that
    always fails; return the run, how many chat spans the ledger priced and their sum."""
    from daytwo.exceptions import BackendError
    from daytwo.runtime import PythonTools

    def broken(idempotency_key: str, **kw: object) -> object:
        raise BackendError("gone")

    registry = ProfileRegistry({"scripted": scripted_profile(**PAID)})  # type: ignore[arg-type]
    handle = setup_tracing(store, prices=PriceBook(registry))
    tools = PythonTools()
    tools.add("legacy_lookup", broken)
    tools.add("lookup_v2", lambda sku, idempotency_key: {"sku": sku})
    try:
        with ScriptedModelServer(replies) as server:
            model = scripted_chat_model(server.base_url, **PAID)  # type: ignore[arg-type]
            with Runtime(
                store, Services(tools=tools, llm=ModelLLM(model)), data_dir=tmp_path
            ) as rt:
                rt.registry.register(load_spec(spec))
                run = rt.start(str(spec["name"]), {"sku": "A1"}, principal="alice")
            model.close()
        handle.flush()
    finally:
        handle.shutdown()
    with store.session() as s:
        chats = [sp for sp in s.scalars(sa.select(SpanRow)) if sp.operation == "chat"]
    assert all(sp.cost_status == "priced" for sp in chats)
    (ledger,) = [r for r in rollup(store, "run") if r.key == run["id"]]
    return run, len(chats), ledger.cost_usd


def test_a_failed_structured_answer_is_paid_for_in_the_run_as_in_the_ledger(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Every rung of the repair ladder answered (and was billed) but none was valid,
    twice (retry_on StructuredOutputError): the failed run still costs what the
    ledger says its model calls cost."""
    spec = {
        "name": "picky",
        "model": "scripted",
        "steps": [
            {
                "id": "answer",
                "kind": "llm",
                "prompt": "Q",
                "schema": {
                    "type": "object",
                    "properties": {"n": {"type": "integer"}},
                    "required": ["n"],
                },
                "retry": {"attempts": 2, "backoff_s": 0, "jitter_s": 0,
                          "retry_on": ["StructuredOutputError"]},
            }
        ],
    }  # fmt: skip
    replies = [Reply(content="no json here", usage=USED) for _ in range(8)]  # type: ignore[arg-type]
    run, calls, ledger = _failed_run_cost(sqlite_store, tmp_path, spec, replies)
    assert run["status"] == "failed"
    assert calls >= 4  # two tries, each the first ask and a re-ask
    assert ledger == calls * PER_CALL
    assert Decimal(str(run["cost_usd"])) == ledger
    assert run["tokens"] == calls * 434


def test_a_rejected_plan_is_paid_for_in_the_run_as_in_the_ledger(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """The tool fails, the planner's plan names a tool it may not call and is rejected:
    the planner's model call still counts in the run's cost."""
    spec = {
        "name": "planned",
        "model": "scripted",
        "planner": True,
        "retry": {"attempts": 1},
        "steps": [{"id": "stock", "kind": "tool", "tool": "legacy_lookup"}],
    }
    bad_plan = '{"calls": [{"tool": "rm_rf", "arguments": {}}]}'
    run, calls, ledger = _failed_run_cost(
        sqlite_store,
        tmp_path,
        spec,
        [Reply(content=bad_plan, usage=USED)],  # type: ignore[arg-type]
    )
    assert run["status"] == "failed"
    assert calls == 1
    assert ledger == PER_CALL
    assert Decimal(str(run["cost_usd"])) == ledger
