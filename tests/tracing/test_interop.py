"""Export conventions, content capture with redaction, OTLP headers, agent roll-ups."""

from __future__ import annotations

from decimal import Decimal

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from daytwo.exceptions import ConfigError
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.tracing import TracingHandle
from daytwo.tracing.content import ContentPolicy, capture, configure_content
from daytwo.tracing.interop import InteropExporter, span_kind
from daytwo.tracing.ledger import agent_name, rollup
from daytwo.tracing.setup import otlp_headers


@pytest.mark.parametrize(
    ("attrs", "kind"),
    [
        ({"gen_ai.operation.name": "chat"}, "LLM"),
        ({"gen_ai.operation.name": "embeddings"}, "EMBEDDING"),
        ({"gen_ai.operation.name": "execute_tool"}, "TOOL"),
        ({"gen_ai.operation.name": "retrieval"}, "RETRIEVER"),
        ({"gen_ai.operation.name": "invoke_agent"}, "AGENT"),
        ({"daytwo.run.id": "r"}, "AGENT"),
        ({"daytwo.run.id": "r", "daytwo.step.id": "s"}, "CHAIN"),
        ({}, "CHAIN"),
    ],
)
def test_every_span_gets_a_kind(attrs: dict[str, str], kind: str) -> None:
    assert span_kind(attrs) == kind


def test_redaction_rules() -> None:
    policy = ContentPolicy.build(True, [r"A-\d+"])
    assert policy.redact("order A-1001") == "order [REDACTED]"
    defaults = configure_content(Settings(trace_content=True))
    text = "mail ada@example.com, Authorization: Bearer abc.def, key sk-proj-0123456789abcdefXYZ"
    redacted = defaults.redact(text)
    assert "ada@example.com" not in redacted
    assert "abc.def" not in redacted
    assert "0123456789abcdef" not in redacted
    assert redacted.count("[REDACTED]") == 3
    cut = ContentPolicy.build(True, [], max_chars=64).redact("x" * 100)
    assert len(cut) == 65
    with pytest.raises(ConfigError, match="not a regular expression"):
        configure_content(Settings(trace_content=True, trace_content_redact=["(unclosed"]))
    configure_content(None)


def test_content_is_off_by_default_and_exported_with_kinds() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InteropExporter(exporter)))
    tracer = provider.get_tracer("t")
    configure_content(None)
    with tracer.start_as_current_span("execute_tool t") as span:
        span.set_attribute("gen_ai.operation.name", "execute_tool")
        capture(span, "gen_ai.tool.call.arguments", {"q": 1})
    assert "gen_ai.tool.call.arguments" not in (exporter.get_finished_spans()[0].attributes or {})
    configure_content(Settings(trace_content=True))
    try:
        with tracer.start_as_current_span("run a", attributes={"daytwo.run.id": "r"}) as run:
            run.set_attribute("daytwo.principal", "alice")
            run.set_attribute("daytwo.session.id", "s-1")
            with tracer.start_as_current_span("chat wrapper") as wrapper:
                wrapper.set_attributes(
                    {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7}
                )
                with tracer.start_as_current_span("chat inner") as inner:
                    inner.set_attributes(
                        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7}
                    )
            with tracer.start_as_current_span("execute_tool t") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                capture(tool, "gen_ai.tool.call.arguments", {"email": "bob@example.com"})
    finally:
        configure_content(None)
    spans = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()[1:]}
    assert spans["chat inner"]["openinference.span.kind"] == "LLM"
    assert spans["chat inner"]["llm.token_count.prompt"] == 7
    # The wrapper leaves as a CHAIN without usage: receivers count each call once.
    assert spans["chat wrapper"]["openinference.span.kind"] == "CHAIN"
    assert "gen_ai.usage.input_tokens" not in spans["chat wrapper"]
    run_attrs = spans["run a"]
    assert run_attrs["openinference.span.kind"] == "AGENT"
    assert run_attrs["gen_ai.operation.name"] == "invoke_agent"
    assert (run_attrs["user.id"], run_attrs["session.id"]) == ("alice", "s-1")
    assert spans["execute_tool t"]["input.value"] == '{"email": "[REDACTED]"}'


def test_otlp_headers_setting() -> None:
    assert otlp_headers(Settings()) is None
    parsed = otlp_headers(Settings(otlp_headers="Authorization=Basic%20eHk=,x-a=b"))
    assert parsed == {"authorization": "Basic eHk=", "x-a": "b"}
    with pytest.raises(ConfigError, match="name=value"):
        otlp_headers(Settings(otlp_headers="just-a-token"))


def test_costs_by_agent_is_one_row_per_agent(
    sqlite_tracing: TracingHandle, sqlite_store: Store
) -> None:
    assert agent_name("support@12") == "support"
    assert agent_name("team@example") == "team@example"
    tracer = trace.get_tracer("daytwo.test")
    attrs = {"daytwo.run.id": "r", "daytwo.agent.name": "support", "daytwo.agent.version": 1}
    with tracer.start_as_current_span("step", attributes=attrs):
        with tracer.start_as_current_span("execute_tool a") as runtime_tool:
            runtime_tool.set_attribute("daytwo.tool.cost_usd", 0.25)
        # The gateway knows the agent's name only.
        with tracer.start_as_current_span(
            "execute_tool b", attributes={"daytwo.agent.name": "support"}
        ) as gw:
            gw.set_attribute("daytwo.tool.cost_usd", 0.5)
    sqlite_tracing.flush()
    (row,) = rollup(sqlite_store, "agent")
    assert row.key == "support"
    assert row.cost_usd == Decimal("0.75")
