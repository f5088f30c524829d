"""What an agent did, read back from its trace: tool calls, retrieved documents, input/output.

External agents (an HTTP service, a LangGraph app, any OTLP sender) do not return
their tool calls or retrieved documents to the eval runner; their spans say it. A
case runs under its own trace (``eval case ...``), the agent joins it through the
W3C trace context, and after the run this module reads the stored spans:

* tool calls from ``execute_tool`` spans (``gen_ai.tool.name``; arguments from
  ``gen_ai.tool.call.arguments`` or OpenInference ``input.value``),
* retrieved ids, in rank order, from retrieval spans (OpenInference
  ``retrieval.documents.N.document.id`` / ``.content``),
* the root's input and output (for promoting an external run into a golden case).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from daytwo.exceptions import InputError
from daytwo.store import Store
from daytwo.store.tables.tracing import SpanRow
from daytwo.tracing import current_handle
from daytwo.tracing.conventions import normalize

__all__ = ["TraceComponents", "read_components", "wait_for_spans"]

_DOC = re.compile(r"^retrieval\.documents\.(\d+)\.document\.(id|content)$")


@dataclass
class TraceComponents:
    """The parts of a trace the eval metrics use."""

    trace_id: str
    spans: int = 0
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    retrieved_ids: list[str] = field(default_factory=list)
    retrieved_context: list[str] = field(default_factory=list)
    input: Any = None
    output: Any = None


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _arguments(attrs: dict[str, Any]) -> dict[str, Any]:
    for key in ("gen_ai.tool.call.arguments", "input.value"):
        value = _json(attrs.get(key))
        if isinstance(value, dict):
            return value
    return {}


def read_components(store: Store, trace_ids: Sequence[str]) -> dict[str, TraceComponents]:
    """The components of each trace (spans in start order; empty for unknown traces)."""
    out = {t: TraceComponents(t) for t in trace_ids}
    wanted = sorted(set(trace_ids))
    with store.session() as s:
        for i in range(0, len(wanted), 500):
            rows = s.execute(
                select(
                    SpanRow.trace_id,
                    SpanRow.parent_span_id,
                    SpanRow.operation,
                    SpanRow.name,
                    SpanRow.attributes,
                )
                .where(SpanRow.trace_id.in_(wanted[i : i + 500]))
                .order_by(SpanRow.start_time, SpanRow.span_id)
            )
            for trace_id, parent, operation, name, attrs in rows:
                comp = out[trace_id]
                comp.spans += 1
                attrs = dict(attrs or {})
                if operation is None and "openinference.span.kind" in attrs:
                    # Stored in-process (not through the OTLP ingest): map it here.
                    try:
                        operation = normalize(attrs, name).get("gen_ai.operation.name")
                    except InputError:
                        operation = None
                if operation == "execute_tool":
                    tool = attrs.get("gen_ai.tool.name") or name.removeprefix("execute_tool ")
                    comp.tool_calls.append({"name": tool, "arguments": _arguments(attrs)})
                elif operation == "retrieval":
                    docs: dict[int, dict[str, str]] = {}
                    for key, value in attrs.items():
                        m = _DOC.match(key)
                        if m:
                            docs.setdefault(int(m.group(1)), {})[m.group(2)] = str(value)
                    for n in sorted(docs):
                        if "id" in docs[n]:
                            comp.retrieved_ids.append(docs[n]["id"])
                        if "content" in docs[n]:
                            comp.retrieved_context.append(docs[n]["content"])
                    captured = _json(attrs.get("daytwo.retrieval.documents"))
                    if not docs and isinstance(captured, list):  # daytwo's own, content on
                        for doc in captured:
                            if isinstance(doc, dict) and "id" in doc:
                                comp.retrieved_ids.append(str(doc["id"]))
                                if doc.get("content") is not None:
                                    comp.retrieved_context.append(str(doc["content"]))
                if "input.value" in attrs and (parent is None or comp.input is None):
                    comp.input = _json(attrs["input.value"])
                if "output.value" in attrs and (parent is None or comp.output is None):
                    comp.output = _json(attrs["output.value"])
    return out


def wait_for_spans(
    store: Store, trace_ids: Sequence[str], timeout_s: float, *, settle_s: float = 1.0
) -> int:
    """Wait (at most ``timeout_s``) for spans an agent exports after it answered.

    Returns as soon as every trace has a span besides the case's own and the count
    stayed the same for ``settle_s``; returns the number of spans seen.
    """
    handle = current_handle()
    if handle is not None and handle.active:
        handle.flush()
    wanted = sorted(set(trace_ids))
    if not wanted:
        return 0
    deadline = time.monotonic() + timeout_s
    last, stable_since = -1, time.monotonic()
    while True:
        with store.session() as s:
            counts = dict(
                s.execute(
                    select(SpanRow.trace_id, func.count())
                    .where(SpanRow.trace_id.in_(wanted[:500]))
                    .group_by(SpanRow.trace_id)
                ).all()
            )
        total = sum(counts.values())
        now = time.monotonic()
        if total != last:
            last, stable_since = total, now
        every = all(counts.get(t, 0) > 1 for t in wanted[:500])
        if (every and now - stable_since >= settle_s) or now >= deadline:
            return total
        time.sleep(0.2)
