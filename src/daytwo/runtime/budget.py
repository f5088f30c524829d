"""The budget of one run: steps, tokens, cost and run time used versus the limits.

Run time is the run's own time: the time its steps took, as each step's checkpoint
records it. Time spent queued, waiting for an approval, or down between a crash and
the recovery does not count, and a recovered run carries on with the time its
checkpointed steps had used (a replay reads the same figures, so it takes the same
decisions as the first pass).

Cost is summed as exact ``Decimal`` (each step's cost comes from
:meth:`daytwo.tracing.pricing.Price.cost` or the tool's price, as the ledger's does), so
the run's ``cost_usd`` is the ledger's sum for the run to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from daytwo.exceptions import BudgetExceeded
from daytwo.runtime.spec import Budgets

__all__ = ["BudgetMeter", "usd"]


def usd(value: float | Decimal | str) -> Decimal:
    """An amount as an exact decimal: a float by its shortest repr (``0.1`` is 0.1, as
    the ledger reads a tool's ``cost_usd``), never its binary expansion."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


@dataclass
class BudgetMeter:
    """Counts use; :meth:`check` raises BudgetExceeded naming the limit that was passed."""

    limits: Budgets
    steps: int = 0
    tokens: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)
    run_ms: float = 0.0

    def elapsed_s(self) -> float:
        """The run's own time so far: the sum of its steps' durations."""
        return self.run_ms / 1000

    def remaining_ms(self) -> float:
        """Run time left, in milliseconds."""
        return max(0.0, self.limits.max_wall_s * 1000 - self.run_ms)

    def remaining_cost(self) -> float:
        """Cost left, in USD."""
        return max(0.0, float(usd(self.limits.max_cost_usd) - self.cost_usd))

    def add(self, *, tokens: int = 0, cost_usd: float | Decimal | str = 0, ms: float = 0.0) -> None:
        """Count one more step's usage (``ms``: how long it ran)."""
        self.tokens += tokens
        self.cost_usd += usd(cost_usd)
        self.run_ms += ms

    def check(self, *, before_step: bool = False) -> None:
        """Raise BudgetExceeded when a limit is passed (``before_step`` counts the next step)."""
        lim = self.limits
        steps = self.steps + (1 if before_step else 0)
        if steps > lim.max_steps:
            raise BudgetExceeded(
                f"step budget exceeded: step {steps} > max_steps {lim.max_steps}",
                hint="raise budgets.max_steps in the agent spec",
                limit="max_steps",
            )
        if self.tokens > lim.max_tokens:
            raise BudgetExceeded(
                f"token budget exceeded: {self.tokens} > max_tokens {lim.max_tokens}",
                hint="raise budgets.max_tokens or shorten prompts",
                limit="max_tokens",
            )
        if self.cost_usd > usd(lim.max_cost_usd):
            raise BudgetExceeded(
                f"cost budget exceeded: ${self.cost_usd:.4f} > max_cost_usd {lim.max_cost_usd}",
                hint="raise budgets.max_cost_usd or use cheaper tools/models",
                limit="max_cost_usd",
            )
        if self.elapsed_s() > lim.max_wall_s:
            raise BudgetExceeded(
                f"run-time budget exceeded: the steps ran {self.elapsed_s():.1f} s > "
                f"max_wall_s {lim.max_wall_s}",
                hint="raise budgets.max_wall_s (time spent in steps; queueing and "
                "approval waits do not count)",
                limit="max_wall_s",
            )
