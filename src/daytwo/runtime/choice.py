"""Telemetry-aware choice among a capability's tools, with a circuit breaker.

Rule, in order: drop tools whose error rate is over the SLO's threshold
(circuit open); keep those whose live p99 fits the latency budget left and whose
cost fits the cost budget left; take the first of them in preference order
(``prefer`` in the spec, else catalog order). When none fits, take the open-circuit-free
tool with the lowest p99 (best effort) and say so. Every choice returns a
decision record: candidates, their live figures, the rule that decided.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from daytwo.exceptions import NoToolAvailable
from daytwo.runtime.protocols import TelemetrySource

if TYPE_CHECKING:
    from daytwo.gateway.telemetry import ToolStats

__all__ = ["Choice", "NoToolAvailable", "choose_tool"]


@dataclass(frozen=True)
class Choice:
    """The chosen tool and the decision record explaining it."""

    tool: str
    rule: str
    summary: str
    candidates: list[dict[str, Any]]

    def record(self) -> dict[str, Any]:
        """Decision data (JSON-able)."""
        return {"chosen": self.tool, "rule": self.rule, "candidates": self.candidates}


def choose_tool(
    capability: str,
    tools: list[str],
    telemetry: TelemetrySource,
    *,
    latency_budget_ms: float,
    cost_budget_usd: float,
    max_error_rate: float,
    prefer: tuple[str, ...] = (),
    exclude: frozenset[str] = frozenset(),
) -> Choice:
    """Pick one of ``tools`` for ``capability`` from live figures and the budget left."""
    ordered = [t for t in prefer if t in tools] + [t for t in tools if t not in prefer]
    candidates: list[dict[str, Any]] = []
    fitting: list[str] = []
    usable: list[tuple[float, str]] = []
    for tool in ordered:
        stats: ToolStats = telemetry.snapshot(tool)
        row: dict[str, Any] = {"tool": tool, **asdict(stats)}
        if tool in exclude:
            row["verdict"] = "excluded (failed earlier in this run)"
        elif stats.calls and stats.error_rate > max_error_rate:
            row["verdict"] = f"circuit open (error rate {stats.error_rate:.2f} > {max_error_rate})"
        elif stats.p99_ms > latency_budget_ms:
            row["verdict"] = f"p99 {stats.p99_ms:.0f} ms over budget {latency_budget_ms:.0f} ms"
            usable.append((stats.p99_ms, tool))
        elif stats.cost_usd > cost_budget_usd:
            row["verdict"] = f"cost {stats.cost_usd} over budget {cost_budget_usd:.4f}"
            usable.append((stats.p99_ms, tool))
        else:
            row["verdict"] = "fits budget"
            fitting.append(tool)
            usable.append((stats.p99_ms, tool))
        candidates.append(row)
    if fitting:
        tool = fitting[0]
        rule = "first preferred tool within latency and cost budget"
        summary = (
            f"chose {tool} for {capability}: first in preference order whose live p99 "
            f"fits the {latency_budget_ms:.0f} ms budget left"
        )
    elif usable:
        tool = min(usable)[1]
        rule = "none within budget: lowest p99"
        summary = f"chose {tool} for {capability}: no tool fits the budget, lowest live p99"
    else:
        raise NoToolAvailable(
            f"no usable tool for capability {capability!r}: "
            + "; ".join(f"{c['tool']}: {c['verdict']}" for c in candidates),
            hint="wait for the circuit to close or add a tool with this capability",
        )
    passed_over = [
        f"{c['tool']} ({c['verdict']})"
        for c in candidates
        if c["tool"] != tool and c["verdict"] != "fits budget"
    ]
    if passed_over:
        # Say why a preferred (often cheaper) tool was not taken, in the sentence itself.
        summary += "; passed over " + ", ".join(passed_over)
    return Choice(tool=tool, rule=rule, summary=summary, candidates=candidates)
