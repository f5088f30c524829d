"""daytwo for any Python agent: a thin layer over the OpenTelemetry SDK.

    import daytwo.sdk as dt

    dt.init("http://127.0.0.1:8000", api_key="dt_...")

    @dt.observe(session="s-1", user="u-7")
    def answer(question: str) -> str: ...

    with dt.observe("lookup", kind="tool") as obs:
        obs.set_output(find(...))

    dt.score(obs.trace_id, "user_feedback", 1, comment="helpful")

    llm = dt.client()  # openai.OpenAI through the daytwo model gateway
    llm.chat.completions.create(model="local/smollm2-135m", messages=[...])

Spans go to the daytwo server over OTLP (``POST /v1/traces``): each trace becomes a
run with its costs, waterfall and audit record. Framework instrumentations
(OpenInference for LangChain/LangGraph, pydantic-ai's, the GenAI conventions) export
through the same provider. :func:`http_client` makes a model client send the trace
context, so the model gateway's spans join the agent's trace.
"""

from daytwo.sdk._client import client
from daytwo.sdk._export import Connection, flush, init, shutdown
from daytwo.sdk._http import async_http_client, http_client
from daytwo.sdk._observe import Observation, current_trace_id, observe
from daytwo.sdk._score import score

__all__ = [
    "Connection",
    "Observation",
    "async_http_client",
    "client",
    "current_trace_id",
    "flush",
    "http_client",
    "init",
    "observe",
    "score",
    "shutdown",
]
