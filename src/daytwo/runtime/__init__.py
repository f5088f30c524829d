"""Agent runtime: specs, durable DAG runs on DBOS, retries, re-planning, tool choice, versions.

Heavy imports (DBOS) happen when :class:`Runtime` or the engine is imported,
not when this package is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daytwo.runtime.loader import load_spec, load_spec_file, parse_spec_text
from daytwo.runtime.protocols import (
    LLM,
    AuditSink,
    CallableRetriever,
    LLMResult,
    PythonTools,
    Retriever,
    StaticTelemetry,
    TelemetrySource,
    ToolInvoker,
    ToolOutcome,
)
from daytwo.runtime.spec import AgentSpec, SpecError

if TYPE_CHECKING:
    from daytwo.gateway.telemetry import ToolStats
    from daytwo.runtime.registry import AgentRegistry
    from daytwo.runtime.runtime import Runtime
    from daytwo.runtime.steps import Services

__all__ = [
    "LLM",
    "AgentRegistry",
    "AgentSpec",
    "AuditSink",
    "CallableRetriever",
    "LLMResult",
    "PythonTools",
    "Retriever",
    "Runtime",
    "Services",
    "SpecError",
    "StaticTelemetry",
    "TelemetrySource",
    "ToolInvoker",
    "ToolOutcome",
    "ToolStats",
    "load_spec",
    "load_spec_file",
    "parse_spec_text",
]


def __getattr__(name: str) -> Any:
    if name == "Runtime":
        from daytwo.runtime.runtime import Runtime

        return Runtime
    if name == "Services":
        from daytwo.runtime.steps import Services

        return Services
    if name == "ToolStats":  # the gateway's, loaded with the gateway when first asked for
        from daytwo.gateway.telemetry import ToolStats

        return ToolStats
    if name == "AgentRegistry":
        from daytwo.runtime.registry import AgentRegistry

        return AgentRegistry
    raise AttributeError(name)
