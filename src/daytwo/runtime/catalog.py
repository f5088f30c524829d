"""A spec against the tool catalog: every tool and capability it names exists."""

from __future__ import annotations

from daytwo.exceptions import SpecError
from daytwo.runtime.protocols import ToolInvoker
from daytwo.runtime.spec import AgentSpec, MapStep, PlanStep, ToolStep

__all__ = ["check_catalog"]


def check_catalog(spec: AgentSpec, tools: ToolInvoker | None) -> None:
    """Raise SpecError when a step names a tool or capability the catalog does not have."""
    if tools is None:
        return
    known = set(tools.tools())
    for step in (*spec.steps, *spec.degraded):
        names: list[str] = []
        if isinstance(step, (ToolStep, MapStep)) and step.tool is not None:
            names.append(step.tool)
        if isinstance(step, PlanStep):
            names.extend(step.tools)
        for name in names:
            if name not in known:
                raise SpecError(
                    f"agent {spec.name!r}: step {step.id!r} names unknown tool {name!r}",
                    hint=f"known tools: {', '.join(sorted(known)) or 'none'}",
                )
        if (
            isinstance(step, ToolStep)
            and step.capability is not None
            and not tools.tools(step.capability)
        ):
            raise SpecError(
                f"agent {spec.name!r}: step {step.id!r} names capability "
                f"{step.capability!r}, which no tool offers",
                hint="register a tool with this capability or fix the name",
            )
