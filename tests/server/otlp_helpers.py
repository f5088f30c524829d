"""Spans recorded with the real OpenTelemetry SDK, encoded by the real OTLP encoder."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

PROTOBUF = {"Content-Type": "application/x-protobuf"}


class Recorder:
    """A private tracer provider (never the global one) whose finished spans are kept."""

    def __init__(self, service: str = "support-bot") -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = self.provider.get_tracer("test.agent")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def take(self) -> list[ReadableSpan]:
        spans = self.spans()
        self.exporter.clear()
        return spans


def protobuf(spans: Sequence[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


def otlp_json(spans: Sequence[ReadableSpan]) -> bytes:
    """OTLP/JSON: protobuf's JSON mapping with hex ids (as the spec requires)."""
    doc: dict[str, Any] = json_format.MessageToDict(encode_spans(spans))
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        import base64

                        sp[key] = base64.b64decode(sp[key]).hex()
    return json.dumps(doc).encode()


def gz(body: bytes) -> bytes:
    return gzip.compress(body)


def trace_hex(span: ReadableSpan) -> str:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}"


@contextmanager
def langchain_like_trace(
    rec: Recorder, *, model: str = "gpt-4o-mini", prompt: int = 120, completion: int = 30
) -> Iterator[dict[str, Any]]:
    """An OpenInference trace as LangChain's instrumentor writes it: chain → LLM, tool,
    retriever. Yields a dict that gets the LLM span's context (for a nested gateway span)."""
    out: dict[str, Any] = {}
    with rec.tracer.start_as_current_span("LangGraph") as root:
        root.set_attribute("openinference.span.kind", "CHAIN")
        root.set_attribute("input.value", json.dumps({"question": "where is order A-1001?"}))
        root.set_attribute("session.id", "sess-42")
        with rec.tracer.start_as_current_span("retrieve_docs") as ret:
            ret.set_attribute("openinference.span.kind", "RETRIEVER")
            ret.set_attribute("retrieval.documents.0.document.content", "Orders ship in 1 day.")
            ret.set_attribute("retrieval.documents.0.document.id", "doc-1")
            ret.set_attribute("retrieval.documents.1.document.content", "Returns take 5 days.")
            ret.set_attribute("retrieval.documents.1.document.id", "doc-2")
        with rec.tracer.start_as_current_span("ChatOpenAI") as llm:
            llm.set_attribute("openinference.span.kind", "LLM")
            llm.set_attribute("llm.model_name", model)
            llm.set_attribute("llm.token_count.prompt", prompt)
            llm.set_attribute("llm.token_count.completion", completion)
            llm.set_attribute("llm.provider", "openai")
            out["llm"] = llm.get_span_context()
            yield out
        with rec.tracer.start_as_current_span("orders_status") as tool:
            tool.set_attribute("openinference.span.kind", "TOOL")
            tool.set_attribute("tool.name", "orders_status")
            tool.set_attribute("input.value", '{"order_id": "A-1001"}')
        root.set_attribute("output.value", "It ships tomorrow.")
