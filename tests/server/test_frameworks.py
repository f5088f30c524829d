"""Real agent frameworks nobody here wrote, exporting OTLP to daytwo, their LLM calls
through daytwo's model gateway (upstream: the scripted OpenAI-compatible server).

Each agent has its own tracer provider and the real OTLP exporter, as in its own
process: its spans reach daytwo only through ``POST /v1/traces``. The model client
sends the trace context (``daytwo.sdk.http_client``), so the gateway's priced ``chat``
span lands inside the framework's LLM span: one trace, and each call counted once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import daytwo.sdk as dt
from daytwo.server import create_app
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow
from daytwo.testing import Reply, ScriptedModelServer
from daytwo.tracing import current_handle
from daytwo.tracing.ledger import rollup

from .helpers import Keys, make_keys
from .live import live_server
from .test_model_gateway import write_profiles

pytestmark = pytest.mark.slow

MODEL = "openai/gpt-4o-mini"
PRICE_IN, PRICE_OUT = Decimal("0.15"), Decimal("0.60")


@dataclass
class Daytwo:
    url: str
    keys: Keys
    store: Store
    upstream: ScriptedModelServer

    def agent_provider(self, service: str) -> TracerProvider:
        """The agent's own tracer provider exporting to daytwo (as another process would)."""
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(
            SimpleSpanProcessor(
                OTLPSpanExporter(
                    endpoint=f"{self.url}/v1/traces",
                    headers={"Authorization": f"Bearer {self.keys.operator}"},
                )
            )
        )
        return provider

    def spans(self, trace_id: str) -> list[SpanRow]:
        handle = current_handle()
        if handle is not None:
            handle.flush()
        with self.store.session() as s:
            q = sa.select(SpanRow).where(SpanRow.trace_id == trace_id).order_by(SpanRow.start_time)
            return list(s.scalars(q))


@pytest.fixture
def daytwo(
    tmp_path: Path, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daytwo]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
    script = [
        Reply(tool_calls=[("orders_status", {"order_id": "A-1001"})]),
        Reply(content="Order A-1001 has shipped."),
    ]
    with ScriptedModelServer(
        script, default="Order A-1001 has shipped.", model="gpt-4o-mini"
    ) as up:
        settings = Settings(
            data_dir=tmp_path / "data", database_url=sqlite_store.url, embedder="hashing-384"
        )
        write_profiles(settings.data_dir, up)
        app = create_app(
            settings, sqlite_store, with_runtime=False, with_gateway=False, with_knowledge=False
        )
        keys = make_keys(sqlite_store)
        with live_server(app) as url:
            yield Daytwo(url, keys, sqlite_store, up)


def _check_one_trace_counted_once(d: Daytwo, spans: list[SpanRow], framework_llm: str) -> None:
    """Parent links hold, the gateway's chat spans sit under the framework's LLM spans,
    only they are priced, and the trace is a run whose cost is the sum of those."""
    assert len({s.trace_id for s in spans}) == 1
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_span_id is None]
    assert len(roots) == 1
    assert all(s.parent_span_id in by_id for s in spans if s is not roots[0])
    # The gateway's own spans (this server's tracer) vs the framework's (ingested).
    gateway = [s for s in spans if s.operation == "chat" and (s.scope or "").startswith("daytwo")]
    framework = [s for s in spans if s.name.startswith(framework_llm) and s not in gateway]
    assert len(gateway) == 2
    assert len(framework) == 2
    for g in gateway:  # each gateway call ran inside one of the framework's LLM calls
        assert any(f.start_time <= g.start_time and g.end_time <= f.end_time for f in framework)
        assert g.cost_status == "priced"
    assert {f.cost_status for f in framework} == {"wrapper"}
    expected = sum(
        (Decimal(g.input_tokens or 0) * PRICE_IN + Decimal(g.output_tokens or 0) * PRICE_OUT)
        / 10**6
        for g in gateway
    )
    assert expected > 0
    run_id = f"otlp-{roots[0].trace_id}"
    [by_run] = [r for r in rollup(d.store, "run") if r.key == run_id]
    assert by_run.cost_usd == expected
    assert by_run.priced_spans == 2
    runs = d.keys.header(d.keys.viewer)
    import httpx

    listed = httpx.get(f"{d.url}/api/v1/runs", headers=runs).json()
    assert run_id in [r["id"] for r in listed]
    explained = httpx.get(f"{d.url}/api/v1/runs/{run_id}/explain", headers=runs).json()
    texts = " ".join(s["text"] for s in explained["steps"])
    assert "Called the tool orders_status" in texts
    assert "cost counted in the call inside it" in texts
    with d.store.session() as s:
        run = s.get(RunRecord, run_id)
        assert run is not None
        assert Decimal(str(run.cost_usd)) == expected


def test_langgraph_agent_with_openinference(daytwo: Daytwo) -> None:
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition
    from openinference.instrumentation.langchain import LangChainInstrumentor

    provider = daytwo.agent_provider("langgraph-support")
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:

        @tool
        def orders_status(order_id: str) -> str:
            """The shipping status of an order."""
            return f"{order_id}: shipped"

        llm = ChatOpenAI(
            model=MODEL,
            base_url=f"{daytwo.url}/v1",
            api_key=daytwo.keys.operator,  # type: ignore[arg-type]
            http_client=dt.http_client(),
            max_retries=0,
        ).bind_tools([orders_status])

        def agent(state: MessagesState) -> dict[str, list[object]]:
            return {"messages": [llm.invoke(state["messages"])]}

        graph = StateGraph(MessagesState)
        graph.add_node("agent", agent)
        graph.add_node("tools", ToolNode([orders_status]))
        graph.add_edge(START, "agent")
        graph.add_conditional_edges("agent", tools_condition)
        graph.add_edge("tools", "agent")
        app = graph.compile()
        out = app.invoke({"messages": [HumanMessage("Where is order A-1001?")]})
        assert out["messages"][-1].content == "Order A-1001 has shipped."
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    with daytwo.store.session() as s:
        trace_id = s.scalar(sa.select(SpanRow.trace_id).where(SpanRow.name == "LangGraph").limit(1))
    assert trace_id is not None
    spans = daytwo.spans(trace_id)
    _check_one_trace_counted_once(daytwo, spans, "ChatOpenAI")
    assert any(s.operation == "execute_tool" for s in spans)


def test_pydantic_ai_agent_with_its_otel_instrumentation(daytwo: Daytwo) -> None:
    import openai
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = daytwo.agent_provider("pydantic-ai-support")
    client = openai.AsyncOpenAI(
        base_url=f"{daytwo.url}/v1",
        api_key=daytwo.keys.operator,
        http_client=dt.async_http_client(),
        max_retries=0,
    )
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=client))
    agent = Agent(
        model,
        capabilities=[Instrumentation(settings=InstrumentationSettings(tracer_provider=provider))],
    )

    @agent.tool_plain
    def orders_status(order_id: str) -> str:
        """The shipping status of an order."""
        return f"{order_id}: shipped"

    try:
        result = asyncio.run(agent.run("Where is order A-1001?"))
        assert result.output == "Order A-1001 has shipped."
    finally:
        provider.shutdown()
    with daytwo.store.session() as s:
        trace_id = s.scalar(
            sa.select(SpanRow.trace_id).where(SpanRow.agent == "pydantic-ai-support").limit(1)
        )
    assert trace_id is not None
    spans = daytwo.spans(trace_id)
    _check_one_trace_counted_once(daytwo, spans, f"chat {MODEL}")
    assert any(s.operation == "execute_tool" for s in spans)
