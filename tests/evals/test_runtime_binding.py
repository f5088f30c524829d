"""The eval machinery bound to the real durable runtime (DBOS) with a scripted LLM."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daytwo.evals.bindings import parse_agent_ref
from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.promote import RuntimeRunSource, promote
from daytwo.evals.runs import EvalRuns
from daytwo.runtime import (
    CallableRetriever,
    PythonTools,
    Runtime,
    Services,
    load_spec,
)
from daytwo.runtime.adapters import ModelLLM
from daytwo.runtime.eval_runner import RuntimeRunner
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer, scripted_chat_model

SPEC = {
    "name": "mini",
    "steps": [
        {
            "id": "docs",
            "kind": "retrieve",
            "collection": "kb",
            "query": "{{ input.question }}",
            "k": 2,
        },
        {
            "id": "answer",
            "kind": "llm",
            "prompt": "Passages: {{ steps.docs[*].text }} Question: {{ input.question }}",
            "schema": {
                "type": "object",
                "properties": {"answer": {"type": "string"}},
                "required": ["answer"],
            },
            "max_tokens": 32,
        },
        {
            "id": "order",
            "kind": "tool",
            "capability": "orders.status",
            "prefer": ["status_cached"],
            "arguments": {"order_id": "{{ input.order_id }}"},
        },
    ],
    "output": "answer",
}


def _hits(collection: str, query: str, k: int) -> list[dict[str, Any]]:
    return [{"id": "kb-shipping", "text": "Orders ship in 3 days."}, {"id": "kb-x", "text": "x"}][
        :k
    ]


@pytest.fixture
def runtime(sqlite_store: Store, tmp_path: Path) -> Iterator[tuple[Runtime, ScriptedModelServer]]:
    tools = PythonTools()
    tools.add(
        "status_cached",
        lambda order_id, idempotency_key: {"order_id": order_id, "status": "shipped"},
        capability="orders.status",
    )
    server = ScriptedModelServer(default=json.dumps({"answer": "Your order has shipped."})).start()
    llm = scripted_chat_model(server.base_url)
    services = Services(tools=tools, llm=ModelLLM(llm), retriever=CallableRetriever(_hits))
    rt = Runtime(sqlite_store, services, data_dir=tmp_path)
    rt.registry.register(load_spec(SPEC))
    rt.launch()
    try:
        yield rt, server
    finally:
        rt.shutdown()
        llm.close()
        server.stop()


def test_eval_run_through_the_runtime(
    runtime: tuple[Runtime, ScriptedModelServer], sqlite_store: Store
) -> None:
    rt, server = runtime
    gs = GoldenSets(sqlite_store)
    gs.create("mini")
    gs.add(
        "mini",
        [
            Case(
                key="ship",
                input="Where is my order?",
                expected_output="Your order has shipped.",
                relevant_doc_ids=["kb-shipping"],
                expected_tool_calls=[{"name": "status_cached", "arguments": {"order_id": "A-1"}}],
                metadata={"inputs": {"order_id": "A-1"}},
            )
        ],
    )
    assert parse_agent_ref("mini@1") == ("mini", "1")
    runner = RuntimeRunner(rt, "mini", "1")
    run = EvalRuns(sqlite_store).run(runner, "mini", concurrency=1)
    m = run.summary["metrics"]
    assert run.summary["errors"] == 0, EvalRuns(sqlite_store).results(run.id)[0].error
    assert m["exact_match"]["mean"] == 1.0
    assert m["recall@5"]["mean"] == 1.0
    assert m["mrr"]["mean"] == 1.0
    assert m["tool_args_accuracy"]["mean"] == 1.0
    assert len(server.requests) >= 1
    result = EvalRuns(sqlite_store).results(run.id)[0]
    assert result.trace_id is not None
    assert len(result.trace_id) == 32  # the case's own trace
    # The durable run's model calls are costed from that trace, not from the runner.
    assert m["input_tokens"]["mean"] > 0
    runtime_run = result.output["extra"]["run_id"]
    # promote the runtime run itself into another set, with provenance
    gs.create("prod")
    info, _case = promote(
        sqlite_store,
        runtime_run,
        set_name="prod",
        tags=["complaint"],
        sources=[RuntimeRunSource(sqlite_store)],
    )
    assert info.version == 1
    stored = gs.cases("prod")[0]
    assert stored.data["input"] == "Where is my order?"
    assert stored.provenance["source"] == "runtime_run"
    assert stored.provenance["agent"] == "mini"
    # The real trace, every input, and what the run did (issue 22: the run id was stored
    # as the trace id and inputs, tool calls and retrieved ids were dropped).
    trace_id = stored.provenance["trace_id"]
    assert trace_id != runtime_run
    assert len(trace_id) == 32
    meta = stored.data["metadata"]
    assert meta["observed_inputs"] == {"question": "Where is my order?", "order_id": "A-1"}
    assert [c["name"] for c in meta["observed_tool_calls"]] == ["status_cached"]
    # Retrieved ids come from the knowledge layer's retrieval spans and decisions; this
    # CallableRetriever emits none, so there is nothing to keep here.
    assert meta["observed_retrieved_ids"] == []
